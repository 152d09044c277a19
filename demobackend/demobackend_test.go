package demobackend_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/demobackend"
)

func start(t *testing.T, name string) (string, *demobackend.Server, context.CancelFunc, chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := demobackend.New(name, nil)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String(), s, cancel, done
}

func get(t *testing.T, method, url string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestRoutes(t *testing.T) {
	url, _, _, _ := start(t, "backend 1")
	for _, path := range []string{"/", "/any/path"} {
		code, h, body := get(t, "GET", url+path, nil)
		if code != 200 || body != "backend 1\n" || h.Get("X-Backend") != "backend 1" {
			t.Fatalf("GET %s: %d %q X-Backend %q", path, code, body, h.Get("X-Backend"))
		}
	}
	xfcc := `By=spiffe://example.org/proxy;Hash=abc;Subject="CN=alice"`
	code, h, body := get(t, "GET", url+"/headers", map[string]string{"X-Forwarded-Client-Cert": xfcc})
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /headers: %d %s", code, h.Get("Content-Type"))
	}
	var e demobackend.Echo
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatal(err)
	}
	if e.Backend != "backend 1" || e.Method != "GET" || e.Path != "/headers" || e.TLS || len(e.Headers["X-Forwarded-Client-Cert"]) != 1 || e.Headers["X-Forwarded-Client-Cert"][0] != xfcc {
		t.Fatalf("echo: %+v", e)
	}
	if !strings.HasPrefix(e.RemoteAddr, "127.0.0.1:") {
		t.Fatalf("remote addr %q", e.RemoteAddr)
	}
}

func TestHealthToggleAndProbe(t *testing.T) {
	url, _, _, _ := start(t, "b")
	ctx := context.Background()
	if err := demobackend.Probe(ctx, url+"/healthz", time.Second); err != nil {
		t.Fatalf("probe healthy: %v", err)
	}
	if code, _, body := get(t, "POST", url+"/healthz/fail", nil); code != 200 || body != "failing=true\n" {
		t.Fatalf("fail: %d %q", code, body)
	}
	if code, _, body := get(t, "GET", url+"/healthz", nil); code != 503 || body != "failing\n" {
		t.Fatalf("healthz while failing: %d %q", code, body)
	}
	if err := demobackend.Probe(ctx, url+"/healthz", time.Second); err == nil || err.Error() != "probe "+url+"/healthz: status 503 Service Unavailable" {
		t.Fatalf("probe failing: %v", err)
	}
	get(t, "POST", url+"/healthz/ok", nil)
	if code, _, body := get(t, "GET", url+"/healthz", nil); code != 200 || body != "ok\n" {
		t.Fatalf("healthz after ok: %d %q", code, body)
	}
}

func TestGracefulShutdown(t *testing.T) {
	url, _, cancel, done := start(t, "b")
	addr := strings.TrimPrefix(url, "http://")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
		done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still accepting after shutdown")
	}
	if err := demobackend.Probe(context.Background(), url+"/healthz", time.Second); err == nil || !strings.HasPrefix(err.Error(), "probe: Get ") {
		t.Fatalf("probe of a stopped backend: %v", err)
	}
}

// TestBrowserPageHasNoFavicon: a browser's GET gets a page with an inline
// empty icon (no /favicon.ico request to take a round-robin turn); curl's
// answer stays the plain name.
func TestBrowserPageHasNoFavicon(t *testing.T) {
	s := demobackend.New("backend <1>", nil)
	for _, c := range []struct{ accept, wantType, wantBody string }{
		{"text/html,application/xhtml+xml,*/*;q=0.8", "text/html; charset=utf-8", `<link rel="icon" href="data:,"><pre>backend &lt;1&gt;` + "\n</pre>"},
		{"*/*", "text/plain; charset=utf-8", "backend <1>\n"},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://b/", nil)
		req.Header.Set("Accept", c.accept)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if got := rec.Header().Get("Content-Type"); got != c.wantType || !strings.Contains(rec.Body.String(), c.wantBody) {
			t.Errorf("Accept %q: %s %q, want %s containing %q", c.accept, got, rec.Body.String(), c.wantType, c.wantBody)
		}
	}
}
