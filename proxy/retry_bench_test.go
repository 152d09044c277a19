package proxy

import (
	"io"
	"net/http"
	"testing"

	"github.com/certplane/certplane/config"
)

// BenchmarkDefaultRouteRequest is one keep-alive HTTP/1.1 request through
// the route and cluster certplane's builders emit for a plain config
// route (with its default retry policy), round robin over two backends:
// the cost of the per-request upstream call (proxy/retry.go).
func BenchmarkDefaultRouteRequest(b *testing.B) {
	b1, b2 := startBackend(b, "backend 1"), startBackend(b, "backend 2")
	l := &config.Listener{Name: "public", Routes: []config.Route{{PathPrefix: "/", Backend: "app"}}}
	e := newRoutingEnv(b, l, &config.Backend{Name: "app", Endpoints: endpointsOf(b, b1.addr(), b2.addr())})
	tr := e.client.Transport.(*http.Transport)
	tr.ForceAttemptHTTP2, tr.MaxIdleConnsPerHost = false, 1
	url := e.url("/orders")
	do := func() {
		resp, err := e.client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	do()
	b.ReportAllocs()
	for b.Loop() {
		do()
	}
}
