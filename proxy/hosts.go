package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// host is one upstream endpoint. Its identity (cluster, address) outlives
// resource updates, so its health and outlier state survive an update that
// keeps the endpoint.
type host struct {
	cluster string
	addr    string // host:port; a DNS name for STRICT_DNS, resolved at dial time

	// healthy is the active health-check verdict; true when the cluster has
	// no health checks.
	healthy atomic.Bool
	// checked records that a health check has succeeded at least once, so
	// the first success marks the host healthy at once, as in Envoy.
	checked atomic.Bool
	// probed records that a health check has had a result (success,
	// failure or timeout): the host's part of its cluster's first round.
	probed atomic.Bool
	// active counts the requests on the host whose response has not
	// ended (Envoy's rq_active), for least_request.
	active atomic.Int64

	mu           sync.Mutex
	cons5xx      int
	consGateway  int
	ejectedUntil time.Time
	ejections    int // consecutive ejections: the ejection time multiplier
}

// usable reports whether the host may receive traffic outside panic mode.
func (h *host) usable(now time.Time) bool {
	return h.healthy.Load() && !h.ejected(now)
}

func (h *host) ejected(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Before(h.ejectedUntil)
}

// clusterRuntime is the long-lived, mutable side of a cluster: its hosts by
// address, the round-robin cursor and the health checker. Only the proxy's
// update path touches it, under Proxy.mu.
type clusterRuntime struct {
	hosts map[string]*host
	rr    atomic.Uint64
	// retries counts the retries scheduled and not yet answered, for the
	// default circuit breaker (envoyMaxRetries).
	retries atomic.Int64
	checker *healthChecker
	// trafficSeen switches health checks from no_traffic_interval to
	// interval once the cluster carried a request, as in Envoy.
	trafficSeen atomic.Bool
	// hcKey is the health-check configuration the checker runs with.
	hcKey string
	// warm records that the first health-check round finished: every
	// host had a result. Hosts added later do not warm the cluster again.
	warm atomic.Bool
}

// envoyPanicThreshold is Envoy's default healthy_panic_threshold (50%).
const envoyPanicThreshold = 50.0

// pick returns the host of the cluster's lb_policy among the usable hosts, or over all
// hosts when fewer than the panic threshold are usable (Envoy's panic mode;
// a threshold of 0 turns it off, and no usable host then means nil).
func (c *clusterState) pick(now time.Time) *host {
	c.rt.trafficSeen.Store(true)
	if len(c.hosts) == 0 {
		return nil
	}
	usable := make([]*host, 0, len(c.hosts))
	for _, h := range c.hosts {
		if h.usable(now) {
			usable = append(usable, h)
		}
	}
	if c.panicThreshold > 0 && float64(len(usable))*100 < c.panicThreshold*float64(len(c.hosts)) {
		usable = c.hosts
	}
	if len(usable) == 0 {
		return nil
	}
	return c.lb.choose(usable, c.rt)
}
