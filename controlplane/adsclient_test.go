package controlplane

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/certplane/certplane/envoy"
)

// response is one DiscoveryResponse as the client saw it.
type response struct {
	typeURL   string
	version   string
	nonce     string
	resources map[string]types.Resource
	at        time.Time
}

// adsClient subscribes the way Envoy does: Listeners and Clusters by
// wildcard, then RouteConfigurations, ClusterLoadAssignments and Secrets by
// the names the Listeners and Clusters reference. It ACKs every response,
// unless reject says otherwise, in which case it NACKs it, keeping its last
// accepted version as Envoy does.
type adsClient struct {
	t      testing.TB
	stream discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *core.Node

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every response
	responses []response
	accepted  map[string]response // last ACKed response per type
	nonce     map[string]string   // last nonce per type
	names     map[string][]string // current by-name subscription per type
	reject    func(r response) string
	recvErr   error
}

func newADSClient(t testing.TB, conn *grpc.ClientConn, nodeID string) *adsClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("open ADS stream: %v", err)
	}
	c := &adsClient{
		t: t, stream: stream, node: &core.Node{Id: nodeID, Cluster: "test"},
		changed:  make(chan struct{}),
		accepted: map[string]response{},
		nonce:    map[string]string{},
		names:    map[string][]string{},
	}
	return c
}

// start sends the wildcard requests and runs the receive loop.
func (c *adsClient) start() {
	c.send(resource.ClusterType, nil, "", "", nil)
	c.send(resource.ListenerType, nil, "", "", nil)
	go c.loop()
}

func (c *adsClient) send(typeURL string, names []string, version, nonce string, nack *rpcstatus.Status) {
	req := &discoverygrpc.DiscoveryRequest{
		Node:          c.node,
		TypeUrl:       typeURL,
		ResourceNames: names,
		VersionInfo:   version,
		ResponseNonce: nonce,
		ErrorDetail:   nack,
	}
	if err := c.stream.Send(req); err != nil {
		c.mu.Lock()
		if c.recvErr == nil {
			c.recvErr = fmt.Errorf("send: %w", err)
		}
		c.mu.Unlock()
	}
}

func (c *adsClient) loop() {
	for {
		msg, err := c.stream.Recv()
		if err != nil {
			c.mu.Lock()
			if c.recvErr == nil {
				c.recvErr = err
			}
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
			return
		}
		r := response{typeURL: msg.GetTypeUrl(), version: msg.GetVersionInfo(), nonce: msg.GetNonce(), resources: map[string]types.Resource{}, at: time.Now()}
		for _, a := range msg.GetResources() {
			m, err := a.UnmarshalNew()
			if err != nil {
				c.t.Errorf("decode %s: %v", a.GetTypeUrl(), err)
				continue
			}
			r.resources[cache.GetResourceName(m)] = m
		}
		c.handle(r)
	}
}

func (c *adsClient) handle(r response) {
	c.mu.Lock()
	c.responses = append(c.responses, r)
	c.nonce[r.typeURL] = r.nonce
	reason := ""
	if c.reject != nil {
		reason = c.reject(r)
	}
	var follow []func()
	if reason != "" {
		kept := c.accepted[r.typeURL].version
		follow = append(follow, func() {
			c.send(r.typeURL, c.namesOf(r.typeURL), kept, r.nonce, &rpcstatus.Status{Code: 3, Message: reason})
		})
	} else {
		c.accepted[r.typeURL] = r
		names := c.names[r.typeURL]
		follow = append(follow, func() { c.send(r.typeURL, names, r.version, r.nonce, nil) })
		// Like Envoy: after Listeners or Clusters, (re)subscribe by name to
		// what they reference, with the last version and nonce of that type.
		if r.typeURL == resource.ListenerType || r.typeURL == resource.ClusterType {
			for typeURL, want := range c.referencedLocked() {
				if slices.Equal(want, c.names[typeURL]) {
					continue
				}
				c.names[typeURL] = want
				version, nonce := c.accepted[typeURL].version, c.nonce[typeURL]
				follow = append(follow, func() { c.send(typeURL, want, version, nonce, nil) })
			}
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	for _, f := range follow {
		f()
	}
}

func (c *adsClient) namesOf(typeURL string) []string {
	return c.names[typeURL]
}

// referencedLocked derives the by-name subscriptions from the accepted
// Listeners and Clusters.
func (c *adsClient) referencedLocked() map[string][]string {
	set := envoy.Set{
		resource.ListenerType: c.accepted[resource.ListenerType].resources,
		resource.ClusterType:  c.accepted[resource.ClusterType].resources,
	}
	routes := map[string]bool{}
	for _, l := range set[resource.ListenerType] {
		for n := range cache.GetResourceReferences(map[string]types.ResourceWithTTL{"": {Resource: l}})[resource.RouteType] {
			routes[n] = true
		}
	}
	eds := map[string]bool{}
	for _, cl := range set[resource.ClusterType] {
		for n := range cache.GetResourceReferences(map[string]types.ResourceWithTTL{"": {Resource: cl}})[resource.EndpointType] {
			eds[n] = true
		}
	}
	secrets, err := envoy.ReferencedSecrets(set)
	if err != nil {
		c.t.Errorf("secret references: %v", err)
	}
	out := map[string][]string{
		resource.RouteType:    sortedKeys(routes),
		resource.EndpointType: sortedKeys(eds),
		resource.SecretType:   secrets,
	}
	for k, v := range out {
		if len(v) == 0 {
			delete(out, k) // Envoy does not subscribe to nothing
		}
	}
	return out
}

// waitFor polls cond under the client's lock, waking on every response,
// until it holds or the deadline passes.
func (c *adsClient) waitFor(what string, d time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		c.mu.Lock()
		ok := cond()
		ch := c.changed
		err := c.recvErr
		c.mu.Unlock()
		if ok {
			return
		}
		if err != nil {
			c.t.Fatalf("waiting for %s: stream ended: %v", what, err)
		}
		select {
		case <-ch:
		case <-deadline:
			c.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// count returns the number of responses of typeURL received so far.
func (c *adsClient) count(typeURL string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.responses {
		if r.typeURL == typeURL {
			n++
		}
	}
	return n
}

func (c *adsClient) countLocked(typeURL string) int {
	n := 0
	for _, r := range c.responses {
		if r.typeURL == typeURL {
			n++
		}
	}
	return n
}

// version returns the last accepted version of typeURL.
func (c *adsClient) version(typeURL string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accepted[typeURL].version
}

func (c *adsClient) resource(typeURL, name string) types.Resource {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accepted[typeURL].resources[name]
}

// since returns the responses received after the first n.
func (c *adsClient) since(n int) []response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.responses[n:])
}

func (c *adsClient) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.responses)
}

func (c *adsClient) setReject(f func(r response) string) {
	c.mu.Lock()
	c.reject = f
	c.mu.Unlock()
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
