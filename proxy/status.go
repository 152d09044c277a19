package proxy

import (
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"sort"
	"time"

	"github.com/certplane/certplane/status"
)

// Status is the proxy's view for /status.
type Status struct {
	Connected bool              `json:"xds_connected"`
	Ready     bool              `json:"ready"`
	Versions  map[string]string `json:"versions,omitempty"`
	Listeners []ListenerStatus  `json:"listeners"`
	Clusters  []ClusterStatus   `json:"clusters"`
	// Problems lists resources whose new version could not be applied
	// (their previous version keeps serving), by "type/name".
	Problems map[string]string `json:"problems,omitempty"`
	// TrustStores are the validation-context secrets received.
	TrustStores []status.TrustStore `json:"trust_stores"`
	// ExpiryWarningSeconds is the threshold under which Expiring lists an item.
	ExpiryWarningSeconds int64 `json:"expiry_warning_seconds"`
	// Expiring lists received certificates and CRLs within the threshold or
	// expired, soonest first.
	Expiring []status.Expiry `json:"expiring"`
	// Handshakes is the last hour of handshake results, per minute.
	Handshakes *HandshakeHistory `json:"handshakes"`
}

// ListenerStatus is one listener.
type ListenerStatus struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	Serving     bool   `json:"serving"`
	Warming     string `json:"warming,omitempty"`
	Error       string `json:"error,omitempty"`
	Connections int    `json:"connections"`
	// ClientCertificate is required, optional or not_requested.
	ClientCertificate string `json:"client_certificate,omitempty"`
	// Certificates are the certificates the listener presents.
	Certificates []status.Certificate `json:"certificates,omitempty"`
}

// ClusterStatus is one cluster and its hosts.
type ClusterStatus struct {
	Name  string       `json:"name"`
	Hosts []HostStatus `json:"hosts"`
}

// HostStatus is one upstream host.
type HostStatus struct {
	Address string `json:"address"`
	Healthy bool   `json:"healthy"`
	Ejected bool   `json:"ejected"`
}

func (p *Proxy) buildStatus(st *state, problems map[string]string) *Status {
	s := &Status{Versions: st.res.Versions, Problems: problems}
	names := map[string]bool{}
	for n := range st.res.Listeners {
		names[n] = true
	}
	for n := range st.listeners {
		names[n] = true
	}
	for _, n := range sortedKeys(names) {
		ls := ListenerStatus{Name: n, Warming: st.warming[n], Error: p.bindErrs[n]}
		if l := st.listeners[n]; l != nil {
			ls.Address = l.address
		}
		s.Listeners = append(s.Listeners, ls)
	}
	for _, n := range sortedKeys(st.clusters) {
		s.Clusters = append(s.Clusters, ClusterStatus{Name: n})
	}
	s.Ready = len(st.warming) == 0 && len(p.bindErrs) == 0
	return s
}

// Status reports the current state, with live health and connection counts.
func (p *Proxy) Status() Status {
	s := *p.status.Load()
	s.Connected = p.connected.Load()
	s.Ready = s.Ready && p.updated.Load()
	st := p.state.Load()
	live := *p.live.Load()
	ls := make([]ListenerStatus, len(s.Listeners))
	copy(ls, s.Listeners)
	for i := range ls {
		if lr := live[ls[i].Name]; lr != nil {
			ls[i].Serving = true
			ls[i].Address = lr.ln.Addr().String()
			ls[i].Connections = lr.openConns()
		}
	}
	s.Listeners = ls
	// Ready as Envoy's init manager: the first Listener and Cluster responses
	// have arrived, and every listener is warm and bound. The first update
	// alone is not enough: it may be CDS before LDS, with nothing to serve.
	// The versions are the status's own (not those of a newer state whose
	// listeners are not bound yet), so they agree with its listener list.
	if s.Versions[resource.ListenerType] == "" || s.Versions[resource.ClusterType] == "" {
		s.Ready = false
	}
	for _, l := range ls {
		if !l.Serving {
			s.Ready = false
		}
	}
	now := time.Now()
	cs := make([]ClusterStatus, 0, len(s.Clusters))
	for _, c := range s.Clusters {
		out := ClusterStatus{Name: c.Name}
		if cl := st.clusters[c.Name]; cl != nil {
			for _, h := range cl.hosts {
				out.Hosts = append(out.Hosts, HostStatus{Address: h.addr, Healthy: h.healthy.Load(), Ejected: h.ejected(now)})
			}
		}
		cs = append(cs, out)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	s.Clusters = cs
	p.addView(&s, st, now)
	return s
}

// Ready reports whether the proxy has received its configuration and every
// listener is warm and bound.
func (p *Proxy) Ready() bool { return p.Status().Ready }
