package proxy

import (
	"testing"
)

// usableHosts counts the hosts of cluster that take traffic (healthy and not
// ejected), as /status reports them.
func usableHosts(p *Proxy, cluster string) int {
	n := 0
	for _, c := range p.Status().Clusters {
		if c.Name != cluster {
			continue
		}
		for _, h := range c.Hosts {
			if h.Healthy && !h.Ejected {
				n++
			}
		}
	}
	return n
}

// waitHosts waits until cluster has n usable hosts: a listener may serve
// before the clusters its routes name have arrived (they answer 503 until
// then), so tests that assert a backend's view wait for this first.
func waitHosts(t testing.TB, p *Proxy, cluster string, n int) {
	t.Helper()
	waitFor(t, "cluster "+cluster+" usable hosts", func() bool { return usableHosts(p, cluster) == n })
}
