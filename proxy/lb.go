package proxy

import (
	"math/rand/v2"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// lbPolicy is a cluster's lb_policy (allow.go admits ROUND_ROBIN,
// LEAST_REQUEST and RANDOM only).
type lbPolicy int

const (
	lbRoundRobin lbPolicy = iota
	lbLeastRequest
	lbRandom
)

func lbPolicyOf(p clusterv3.Cluster_LbPolicy) lbPolicy {
	switch p {
	case clusterv3.Cluster_LEAST_REQUEST:
		return lbLeastRequest
	case clusterv3.Cluster_RANDOM:
		return lbRandom
	}
	return lbRoundRobin
}

// leastRequestChoices is Envoy's least_request_lb_config.choice_count
// default: with equally weighted hosts Envoy picks that many hosts at
// random (with replacement) and takes the one with the fewest active
// requests, the first on a tie (power of two choices).
const leastRequestChoices = 2

// choose picks one of usable, which is not empty.
func (p lbPolicy) choose(usable []*host, rt *clusterRuntime) *host {
	switch p {
	case lbRandom:
		return usable[rand.IntN(len(usable))]
	case lbLeastRequest:
		best := usable[rand.IntN(len(usable))]
		for i := 1; i < leastRequestChoices; i++ {
			if h := usable[rand.IntN(len(usable))]; h.active.Load() < best.active.Load() {
				best = h
			}
		}
		return best
	}
	i := rt.rr.Add(1) - 1
	return usable[i%uint64(len(usable))]
}
