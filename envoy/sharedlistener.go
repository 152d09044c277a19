package envoy

import (
	"fmt"
	"sort"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
)

// MergeListeners joins the parts of a shared address's Listener, each built
// by Listener for one config listener on the address (or already joined),
// into one: the parts' filter chains sorted by name, and the one default
// filter chain if a part has it. The parts must agree on everything else
// (address, listener filters, access log, limits). It refuses what Envoy
// would refuse or could not choose between: two chains of one name, one
// server name matched by two chains, two chains (or a chain and a
// default_filter_chain) that take any server name.
func MergeListeners(parts ...*listenerv3.Listener) (*listenerv3.Listener, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("merge listeners: no part")
	}
	frame := func(l *listenerv3.Listener) *listenerv3.Listener {
		c := proto.Clone(l).(*listenerv3.Listener)
		c.FilterChains, c.DefaultFilterChain = nil, nil
		return c
	}
	want, out := frame(parts[0]), frame(parts[0])
	names := map[string]bool{}
	servers := map[string]string{} // server name -> chain
	anyName := ""                  // the chain taking any server name
	for _, p := range parts {
		if p.GetName() != out.GetName() || !proto.Equal(frame(p), want) {
			return nil, fmt.Errorf("listener %q: its parts differ beyond their filter chains (address, listener filters, access log or limits)", out.GetName())
		}
		chains := p.GetFilterChains()
		if d := p.GetDefaultFilterChain(); d != nil {
			if out.DefaultFilterChain != nil {
				return nil, fmt.Errorf("listener %q: chains %q and %q are both the default filter chain", out.GetName(), out.DefaultFilterChain.GetName(), d.GetName())
			}
			out.DefaultFilterChain = d
			chains = append(chains[:len(chains):len(chains)], d)
		}
		for _, fc := range chains {
			if names[fc.GetName()] {
				return nil, fmt.Errorf("listener %q: two filter chains are named %q", out.GetName(), fc.GetName())
			}
			names[fc.GetName()] = true
			sn := fc.GetFilterChainMatch().GetServerNames()
			if len(sn) == 0 {
				if anyName != "" {
					return nil, fmt.Errorf("listener %q: chains %q and %q both take any server name", out.GetName(), anyName, fc.GetName())
				}
				anyName = fc.GetName()
			}
			for _, n := range sn {
				if other, dup := servers[n]; dup {
					return nil, fmt.Errorf("listener %q: server name %q is matched by chains %q and %q", out.GetName(), n, other, fc.GetName())
				}
				servers[n] = fc.GetName()
			}
			if fc != p.GetDefaultFilterChain() {
				out.FilterChains = append(out.FilterChains, fc)
			}
		}
	}
	sort.Slice(out.FilterChains, func(i, j int) bool { return out.FilterChains[i].GetName() < out.FilterChains[j].GetName() })
	return out, nil
}
