package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPprofOnlyWhenAsked: /debug/pprof/ is served with Pprof and not
// without it.
func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv := httptest.NewServer(Handler(Options{Pprof: on}))
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.StatusCode == http.StatusOK; got != on {
				t.Errorf("Pprof %v: GET %s = %d", on, path, resp.StatusCode)
			}
		}
		srv.Close()
	}
}

// TestLoopbackOnly: --pprof is allowed on loopback admin addresses only.
func TestLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:18002": true, "[::1]:0": true, "localhost:1": true, "127.1.2.3:9": true,
		":18002": false, "0.0.0.0:18002": false, "[::]:1": false, "10.0.0.1:18002": false, "example.com:80": false, "nonsense": false,
	} {
		if err := LoopbackOnly(addr); (err == nil) != ok {
			t.Errorf("LoopbackOnly(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}
