package proxy

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/certplane/certplane/xds/client"
)

// buildCluster resolves a Cluster against its endpoints and secrets. Hosts
// come from the cluster's runtime, so an endpoint kept across updates keeps
// its health state. It only reads the runtimes: a new runtime and new hosts
// join them when the state is committed (commitRuntimes), so a candidate
// that is never committed leaves nothing behind.
func (b *builder) buildCluster(c *clusterv3.Cluster, res client.Resources) (*clusterState, error) {
	name := c.GetName()
	spec, err := checkCluster(c)
	if err != nil {
		return nil, err
	}
	addrs := spec.endpoints
	if spec.eds {
		cla := res.Endpoints[name]
		if cla == nil {
			return nil, &missingError{"cluster load assignment " + name}
		}
		if addrs, err = claEndpoints(cla); err != nil {
			return nil, fmt.Errorf("cluster load assignment: %w", err)
		}
	}
	var up *upstreamTLS
	var secretKey string
	cs := &clusterState{name: name, connectTimeout: spec.connectTimeout, hc: spec.hc, outlier: spec.outlier, panicThreshold: spec.panicThreshold, lb: spec.lb}
	if spec.upstream != nil {
		if up, err = buildUpstreamTLS(spec.upstream, b.secrets); err != nil {
			return nil, err
		}
		for _, n := range []string{spec.upstream.trustName, spec.upstream.certName} {
			if n != "" {
				cs.secrets = append(cs.secrets, n)
				secretKey += fmt.Sprintf("%s=%p;", n, b.secrets[n])
			}
		}
	}
	// Reuse the previous transport (and its pooled connections) when neither
	// the cluster nor its secrets changed.
	key := protoHash(c) + "|" + secretKey
	if old := b.prev.clusters[name]; old != nil && old.transportKey == key {
		cs.transport = old.transport
	} else {
		cs.transport = newTransport(spec, up)
	}
	cs.transportKey = key
	cs.scheme = "http"
	if up != nil {
		cs.scheme = "https"
	}
	rt := b.runtimes[name]
	if rt == nil {
		rt = &clusterRuntime{hosts: map[string]*host{}}
	}
	cs.rt = rt
	keep := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		if keep[a] {
			continue // a duplicate endpoint is one host
		}
		keep[a] = true
		h := rt.hosts[a]
		if h == nil {
			// A new host under health checks starts unhealthy until its
			// first check: Envoy's upstream_impl.cc sets FAILED_ACTIVE_HC
			// on a host added "if we are depending on a health checker"
			// (PENDING_ACTIVE_HC only with ignore_new_hosts_until_first_hc).
			h = &host{cluster: name, addr: a}
			h.healthy.Store(spec.hc == nil)
		}
		cs.hosts = append(cs.hosts, h)
	}
	return cs, nil
}

// commitRuntimes makes the runtimes hold exactly the clusters and hosts of
// st, which is being committed: a cluster kept from an older state already
// holds its hosts, one built anew brings its new runtime and hosts. p.mu is
// held.
func (p *Proxy) commitRuntimes(st *state) {
	for name, cs := range st.clusters {
		p.runtimes[name] = cs.rt
		hosts := make(map[string]*host, len(cs.hosts))
		for _, h := range cs.hosts {
			hosts[h.addr] = h
		}
		cs.rt.hosts = hosts
	}
}
