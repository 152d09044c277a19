package proxy

import (
	"testing"
	"time"

	"github.com/certplane/certplane/config"
)

// TestKillOneBackendMidRun is issue 13's acceptance: with two backends and
// certplane's default route (no retries configured), killing one of them
// mid-run costs no request. The default retry policy (one retry on
// connect failure, to another host) sends each request that meets the
// dead backend to the live one, until outlier detection ejects the dead
// one. Without it, 5 of 200 requests got 503: one per connect failure
// until consecutive_5xx (5) ejected the host.
func TestKillOneBackendMidRun(t *testing.T) {
	b1, b2 := startBackend(t, "backend 1"), startBackend(t, "backend 2")
	l := &config.Listener{Name: "public", Routes: []config.Route{{PathPrefix: "/", Backend: "app"}}}
	e := newRoutingEnv(t, l, &config.Backend{Name: "app", Endpoints: endpointsOf(t, b1.addr(), b2.addr())})
	const total, killAt = 200, 50
	deadline := time.Now().Add(60 * time.Second)
	failed := map[int]int{}
	for i := 0; i < total && time.Now().Before(deadline); i++ {
		if i == killAt {
			// Close backend 2's listener and connections, as a crash does.
			b2.CloseClientConnections()
			b2.Close()
		}
		resp, err := e.client.Get(e.url("/pay"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			failed[resp.StatusCode]++
		}
	}
	if len(failed) > 0 {
		t.Errorf("non-2xx answers after killing one of two backends: %v (want none of %d)", failed, total)
	}
	b1.mu.Lock()
	hits := b1.hits
	b1.mu.Unlock()
	if hits < total-killAt {
		t.Errorf("backend 1 answered %d requests, want at least the %d after the kill", hits, total-killAt)
	}
}
