package xds

import (
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/envoy"
)

// sharedPart returns the part of a shared address's Listener that unit u
// holds (envoy.SharedListenerName), or nil.
func sharedPart(u *unit) *listenerv3.Listener {
	for n, r := range u.set[resource.ListenerType] {
		if envoy.IsSharedListenerName(n) {
			return r.(*listenerv3.Listener)
		}
	}
	return nil
}

// sharesListener reports whether units a and b are parts of one shared
// address's Listener: then their same address is no clash.
func sharesListener(a, b *unit) bool {
	pa, pb := sharedPart(a), sharedPart(b)
	return pa != nil && pb != nil && pa.GetName() == pb.GetName()
}

// joinShared returns the Listener of every shared address, joined from its
// parts: the fresh units' first, then each kept (last good) unit's. The
// config loader refuses listeners that could not share; a kept part that
// still cannot join the fresh ones (its file no longer parses, and a fresh
// listener took its server names) is withdrawn as a kept unit whose address
// a fresh one took is: removed from kept, with an error in errs. Fresh parts
// that cannot join mean the loader's checks were bypassed: the error is
// returned, and nothing is published rather than a partial address.
func joinShared(fresh, kept map[string]*unit, errs *[]ListenerError) (map[string]types.Resource, error) {
	lis := map[string]types.Resource{}
	for _, units := range []map[string]*unit{fresh, kept} {
		for _, name := range sortedKeys(units) {
			u := units[name]
			part := sharedPart(u)
			if part == nil {
				continue
			}
			prev, ok := lis[part.GetName()]
			if !ok {
				lis[part.GetName()] = part
				continue
			}
			joined, err := envoy.MergeListeners(prev.(*listenerv3.Listener), part)
			if err == nil {
				lis[part.GetName()] = joined
				continue
			}
			if _, isKept := kept[name]; !isKept {
				return nil, fmt.Errorf("listener %s: %w", name, err)
			}
			delete(kept, name)
			*errs = append(*errs, ListenerError{Listener: name, File: u.source, Err: fmt.Errorf(
				"listener %s: last good version withdrawn: it cannot share address %s with the current listeners: %w", name, u.addr, err)})
		}
	}
	return lis, nil
}
