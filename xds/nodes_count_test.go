package xds

import (
	"context"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// TestConnectedCountsDistinctNodes: the connected count is the distinct
// node IDs with an identified open stream, kept as streams open, identify
// themselves (SotW and delta) and close.
func TestConnectedCountsDistinctNodes(t *testing.T) {
	tk := newTracker("", discardLogger(), nil)
	count := func(want int) {
		t.Helper()
		tk.mu.Lock()
		got := tk.connectedLocked()
		tk.mu.Unlock()
		if got != want {
			t.Errorf("connected %d, want %d", got, want)
		}
	}
	ctx := context.Background()
	for id := int64(1); id <= 4; id++ {
		tk.open(ctx, id, id == 3)
	}
	count(0)
	_ = tk.onRequest(1, &discovery.DiscoveryRequest{Node: nodeOf("a")})
	_ = tk.onRequest(1, &discovery.DiscoveryRequest{Node: nodeOf("a")}) // not a first request: counted once
	_ = tk.onRequest(2, &discovery.DiscoveryRequest{Node: nodeOf("a")})
	_ = tk.onDeltaRequest(3, &discovery.DeltaDiscoveryRequest{Node: nodeOf("b")})
	_ = tk.onDeltaRequest(3, &discovery.DeltaDiscoveryRequest{})
	count(2)
	tk.close(4) // never identified
	count(2)
	tk.close(1)
	count(2) // a still has stream 2
	tk.close(2)
	count(1)
	tk.close(3)
	tk.close(3) // closed twice: no effect
	count(0)
}
