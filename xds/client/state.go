package client

import (
	"fmt"
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

func emptyResources() Resources {
	return Resources{
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets:   map[string]*tlsv3.Secret{},
		Versions:  map[string]string{},

		SecretDigests:   map[string]Digest{},
		ReleasedSecrets: map[string]bool{},
	}
}

// subscriptions are the by-name subscriptions (RDS, EDS, SDS), sorted; the
// wildcard kinds have none.
type subscriptions [numKinds][]string

// update is the outcome of one accepted response, committed only after the
// Validator agrees.
type update struct {
	res  Resources
	subs subscriptions
}

// next computes the view after accepting items as the new state of kind k at
// version. It never mutates cur: each changed map is a fresh copy, so views
// already handed to OnUpdate stay valid (copy-on-write).
//
// LDS and CDS responses are complete: a listener or cluster absent from one
// is removed. RDS, EDS and SDS responses may carry only some subscribed
// resources (SotW for non-full-state types): the others keep their value.
// When LDS or CDS change, the by-name subscriptions are recomputed from the
// references, and resources no longer referenced are dropped.
func next(cur Resources, subs subscriptions, k kind, version string, items []named) (update, error) {
	r := cur
	r.Versions = maps.Clone(cur.Versions)
	r.Versions[k.info().url] = version
	switch k {
	case kListener:
		r.Listeners = make(map[string]*listenerv3.Listener, len(items))
		for _, it := range items {
			r.Listeners[it.name] = it.msg.(*listenerv3.Listener)
		}
	case kCluster:
		r.Clusters = make(map[string]*clusterv3.Cluster, len(items))
		for _, it := range items {
			r.Clusters[it.name] = it.msg.(*clusterv3.Cluster)
		}
	case kRoute:
		r.Routes = maps.Clone(cur.Routes)
		for _, it := range items {
			r.Routes[it.name] = it.msg.(*routev3.RouteConfiguration)
		}
	case kEndpoint:
		r.Endpoints = maps.Clone(cur.Endpoints)
		for _, it := range items {
			r.Endpoints[it.name] = it.msg.(*endpointv3.ClusterLoadAssignment)
		}
	case kSecret:
		r.Secrets = maps.Clone(cur.Secrets)
		r.SecretDigests = maps.Clone(cur.SecretDigests)
		r.ReleasedSecrets = maps.Clone(cur.ReleasedSecrets)
		if r.Secrets == nil {
			r.Secrets = map[string]*tlsv3.Secret{}
		}
		if r.SecretDigests == nil {
			r.SecretDigests = map[string]Digest{}
		}
		for _, it := range items {
			s := it.msg.(*tlsv3.Secret)
			r.Secrets[it.name] = s
			r.SecretDigests[it.name] = SecretDigest(s)
			delete(r.ReleasedSecrets, it.name)
		}
	}
	if k != kListener && k != kCluster {
		return update{res: r, subs: subs}, nil
	}
	want, err := references(r.Listeners, r.Clusters)
	if err != nil {
		return update{}, err
	}
	subs[kRoute] = sortedNames(want.routes)
	subs[kEndpoint] = sortedNames(want.endpoints)
	subs[kSecret] = sortedNames(want.secrets)
	r.Routes = prune(r.Routes, want.routes)
	r.Endpoints = prune(r.Endpoints, want.endpoints)
	r.Secrets = prune(r.Secrets, want.secrets)
	r.SecretDigests = prune(r.SecretDigests, want.secrets)
	r.ReleasedSecrets = prune(r.ReleasedSecrets, want.secrets)
	return update{res: r, subs: subs}, nil
}

// references collects what every listener and cluster references, in name
// order so the first defect reported is deterministic.
func references(listeners map[string]*listenerv3.Listener, clusters map[string]*clusterv3.Cluster) (refs, error) {
	out := newRefs()
	for _, name := range slices.Sorted(maps.Keys(listeners)) {
		if err := listenerRefs(listeners[name], out); err != nil {
			return refs{}, fmt.Errorf("listener %q: %w", name, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(clusters)) {
		if err := clusterRefs(clusters[name], out); err != nil {
			return refs{}, fmt.Errorf("cluster %q: %w", name, err)
		}
	}
	return out, nil
}

// prune returns m without the names not in keep; m itself when nothing goes,
// so unchanged maps stay shared between views.
func prune[V any](m map[string]V, keep map[string]struct{}) map[string]V {
	drop := false
	for name := range m {
		if _, ok := keep[name]; !ok {
			drop = true
			break
		}
	}
	if !drop {
		return m
	}
	out := make(map[string]V, len(keep))
	for name, v := range m {
		if _, ok := keep[name]; ok {
			out[name] = v
		}
	}
	return out
}

// subscribed keeps the items a by-name subscription asked for. A server may
// send more (go-control-plane answers an empty name list with everything);
// those are not ours to hold.
func subscribed(items []named, names []string) []named {
	out := items[:0:0]
	for _, it := range items {
		if _, ok := slices.BinarySearch(names, it.name); ok {
			out = append(out, it)
		}
	}
	return out
}
