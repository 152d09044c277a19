package client

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/envoy/envoytest"
)

// FuzzXDSResponse feeds arbitrary bytes, as a serialized DiscoveryResponse,
// to the stream's response handling (stream.handle: decode, references,
// Validator, ACK or NACK) on a client that holds an ACKed certplane world,
// and checks that each response is ignored, ACKed or NACKed, and exactly
// one of them:
//   - ACK: one OnUpdate with the new view, the type's version is the
//     response's, the request sent carries that version, the response's
//     nonce and no error_detail;
//   - NACK: no OnUpdate, one OnNACK, the view and subscriptions are
//     unchanged, the request sent carries the kept version, the nonce and a
//     non-empty error_detail;
//   - ignored (a type the client does not subscribe to): nothing changes,
//     nothing is sent.
//
// It also checks what the Validator is promised (only the response's type,
// named, unique, subscribed names for RDS/EDS/SDS), that a view already
// handed to OnUpdate is never mutated, and that memory stays bounded: the
// new view keeps only resources of the previous view or of the response,
// and the new ones weigh no more than the response.
//
// The Validator is a stub that rejects any resource whose name contains
// "reject": the proxy's real Validator lives in proxy, which imports this
// package; proxy's FuzzProxyXDS feeds it.
func FuzzXDSResponse(f *testing.F) {
	base := newFuzzBaseline(f)
	for _, seed := range base.seeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		resp := new(discoveryv3.DiscoveryResponse)
		if proto.Unmarshal(data, resp) != nil {
			return // gRPC would fail the stream; nothing reaches handle
		}
		base.check(t, resp, len(data))
	})
}

// fuzzBaseline is a client that has ACKed every type of a certplane world,
// from which each input starts afresh.
type fuzzBaseline struct {
	res   Resources
	subs  subscriptions
	types [numKinds]typeStream
	// msgs remembers every message of res, to prove views are not mutated.
	msgs  map[string]proto.Message
	world envoy.Set
}

func newFuzzBaseline(tb testing.TB) *fuzzBaseline {
	m := envoytest.ScaledModel(tb, 2, 3)
	units, err := envoy.Translate(m)
	if err != nil {
		tb.Fatal(err)
	}
	world, err := envoy.Merge(slices.Collect(maps.Values(units))...)
	if err != nil {
		tb.Fatal(err)
	}
	c, s, _ := newFuzzStream(tb, nil, [numKinds]typeStream{})
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	for _, url := range []string{resource.ListenerType, resource.ClusterType, resource.RouteType, resource.EndpointType, resource.SecretType} {
		resp := worldResponse(tb, world, url, "v1")
		if err := s.handle(resp); err != nil {
			tb.Fatal(err)
		}
		if c.res.Versions[url] != "v1" {
			tb.Fatalf("baseline %s not ACKed: %v", url, s.types)
		}
	}
	b := &fuzzBaseline{res: c.res, subs: c.subs, types: s.types, world: world, msgs: map[string]proto.Message{}}
	b.eachMessage(func(key string, m proto.Message) { b.msgs[key] = m })
	return b
}

// newFuzzStream makes a client and a stream whose sends are recorded, with
// the stub Validator and recorded callbacks.
func newFuzzStream(tb testing.TB, validated *[][]proto.Message, types [numKinds]typeStream) (*client, *stream, *fuzzCalls) {
	calls := &fuzzCalls{}
	c, _, err := newClient(Config{
		Target: "unix:///fuzz.sock", NodeID: "fuzz",
		Logger: slog.New(slog.DiscardHandler),
		Validate: func(_ string, msgs []proto.Message) error {
			if validated != nil {
				*validated = append(*validated, msgs)
			}
			for _, m := range msgs {
				if strings.Contains(kindOfMessage(m).info().name(m), "reject") {
					return errors.New("stub validator: rejected by name")
				}
			}
			return nil
		},
		OnUpdate: func(r Resources) { calls.updates = append(calls.updates, r) },
		OnNACK:   func(url, version string, err error) { calls.nacks = append(calls.nacks, err) },
	})
	if err != nil {
		tb.Fatal(err)
	}
	s := &stream{c: c, ads: &fakeADS{sent: &calls.sent}, types: types, nodeSent: true}
	return c, s, calls
}

// fuzzCalls records what one input caused.
type fuzzCalls struct {
	updates []Resources
	nacks   []error
	sent    []*discoveryv3.DiscoveryRequest
}

// fakeADS records the requests the stream sends; nothing else is called.
type fakeADS struct {
	discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	sent *[]*discoveryv3.DiscoveryRequest
}

func (f *fakeADS) Send(r *discoveryv3.DiscoveryRequest) error {
	*f.sent = append(*f.sent, r)
	return nil
}

// kindOfMessage is the kind of a decoded resource.
func kindOfMessage(m proto.Message) kind {
	k, ok := kindOf(resource.APITypePrefix + string(m.ProtoReflect().Descriptor().FullName()))
	if !ok {
		panic(fmt.Sprintf("not a resource kind: %T", m))
	}
	return k
}

// worldResponse is the response a server sends for one type of world.
func worldResponse(tb testing.TB, world envoy.Set, url, version string) *discoveryv3.DiscoveryResponse {
	resp := &discoveryv3.DiscoveryResponse{TypeUrl: url, VersionInfo: version, Nonce: "n-" + version}
	for _, r := range world.Sorted(url) {
		a, err := anypb.New(r)
		if err != nil {
			tb.Fatal(err)
		}
		resp.Resources = append(resp.Resources, a)
	}
	return resp
}

// eachMessage visits every message of the baseline view, keyed by type URL
// and name.
func (b *fuzzBaseline) eachMessage(visit func(string, proto.Message)) {
	for name, m := range b.res.Listeners {
		visit(resource.ListenerType+"/"+name, m)
	}
	for name, m := range b.res.Routes {
		visit(resource.RouteType+"/"+name, m)
	}
	for name, m := range b.res.Clusters {
		visit(resource.ClusterType+"/"+name, m)
	}
	for name, m := range b.res.Endpoints {
		visit(resource.EndpointType+"/"+name, m)
	}
	for name, m := range b.res.Secrets {
		visit(resource.SecretType+"/"+name, m)
	}
}

// seeds are the world's responses at a new version, each also truncated,
// under a wrong type URL, wrapped in a Resource, with a resource of another
// type inside, with a rejected name, and with a huge nonce.
func (b *fuzzBaseline) seeds(tb testing.TB) [][]byte {
	var out [][]byte
	add := func(r *discoveryv3.DiscoveryResponse) {
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, data)
	}
	for k := range numKinds {
		url := k.info().url
		resp := worldResponse(tb, b.world, url, "v2")
		add(resp)
		data, _ := proto.Marshal(resp)
		out = append(out, data[:len(data)/2])

		wrong := proto.Clone(resp).(*discoveryv3.DiscoveryResponse)
		wrong.TypeUrl = kind((k + 1) % numKinds).info().url
		add(wrong)

		wrapped := proto.Clone(resp).(*discoveryv3.DiscoveryResponse)
		for i, a := range wrapped.Resources {
			w, err := anypb.New(&discoveryv3.Resource{Name: "w", Version: "v2", Resource: a})
			if err != nil {
				tb.Fatal(err)
			}
			wrapped.Resources[i] = w
		}
		add(wrapped)

		mixed := proto.Clone(resp).(*discoveryv3.DiscoveryResponse)
		other := worldResponse(tb, b.world, kind((k+2)%numKinds).info().url, "v2")
		mixed.Resources = append(mixed.Resources, other.Resources...)
		add(mixed)

		huge := proto.Clone(resp).(*discoveryv3.DiscoveryResponse)
		huge.Nonce = strings.Repeat("n", 64<<10)
		add(huge)
	}
	rejected := worldResponse(tb, b.world, resource.ClusterType, "v3")
	c, ok := b.world[resource.ClusterType]["api"].(*clusterv3.Cluster)
	if !ok {
		tb.Fatalf("world has no cluster api: %v", b.world.Names(resource.ClusterType))
	}
	rc := proto.Clone(c).(*clusterv3.Cluster)
	rc.Name = "reject-me"
	a, err := anypb.New(rc)
	if err != nil {
		tb.Fatal(err)
	}
	rejected.Resources = append(rejected.Resources, a)
	add(rejected)
	add(&discoveryv3.DiscoveryResponse{TypeUrl: resource.ListenerType, VersionInfo: "empty", Nonce: "e"})
	add(&discoveryv3.DiscoveryResponse{TypeUrl: "type.googleapis.com/envoy.config.core.v3.Node", VersionInfo: "x"})
	return out
}

// check handles resp on a fresh copy of the baseline, asserts the
// properties of FuzzXDSResponse, and says which outcome it was: "ack",
// "nack" or "ignored". size is the response's wire size.
func (b *fuzzBaseline) check(t *testing.T, resp *discoveryv3.DiscoveryResponse, size int) string {
	var validated [][]proto.Message
	c, s, calls := newFuzzStream(t, &validated, b.types)
	c.res, c.subs = b.res, b.subs
	if err := s.handle(resp); err != nil {
		t.Fatalf("handle: %v (the fake stream never fails a send)", err)
	}
	b.checkUnmutated(t)
	k, known := kindOf(resp.GetTypeUrl())
	switch {
	case len(calls.updates) > 0 && len(calls.nacks) > 0:
		t.Fatalf("response both ACKed and NACKed: %d updates, NACK %v", len(calls.updates), calls.nacks)
	case !known:
		if len(calls.updates)+len(calls.nacks)+len(calls.sent) > 0 || c.res.Versions[resp.GetTypeUrl()] != "" {
			t.Fatalf("response of unknown type %q was not ignored: %+v", resp.GetTypeUrl(), calls)
		}
		return "ignored"
	case len(calls.updates) > 0:
		b.checkACK(t, c, calls, k, resp, size)
		checkValidated(t, k, validated, c.subs)
		return "ack"
	}
	b.checkNACK(t, c, calls, k, resp)
	return "nack"
}

func (b *fuzzBaseline) checkACK(t *testing.T, c *client, calls *fuzzCalls, k kind, resp *discoveryv3.DiscoveryResponse, size int) {
	url := k.info().url
	if len(calls.updates) != 1 || len(calls.nacks) != 0 {
		t.Fatalf("ACK: %d updates and %d NACKs, want 1 and 0", len(calls.updates), len(calls.nacks))
	}
	if got := c.res.Versions[url]; got != resp.GetVersionInfo() {
		t.Fatalf("ACK: %s version %q, want the response's %q", k, got, resp.GetVersionInfo())
	}
	req := firstOfType(calls.sent, url)
	if req == nil || req.GetVersionInfo() != resp.GetVersionInfo() || req.GetResponseNonce() != resp.GetNonce() || req.GetErrorDetail() != nil {
		t.Fatalf("ACK request = %v, want version %q, nonce %q and no error_detail", req, resp.GetVersionInfo(), resp.GetNonce())
	}
	for _, r := range calls.sent {
		if r.GetErrorDetail() != nil {
			t.Fatalf("an ACK sent a request with error_detail: %v", r)
		}
	}
	// Memory: every resource kept is the baseline's or the response's, and
	// what the response added weighs no more than the response.
	added := 0
	view := Resources{Listeners: c.res.Listeners, Routes: c.res.Routes, Clusters: c.res.Clusters, Endpoints: c.res.Endpoints, Secrets: c.res.Secrets}
	fb := &fuzzBaseline{res: view}
	fb.eachMessage(func(key string, m proto.Message) {
		if b.msgs[key] != m {
			added += proto.Size(m)
		}
	})
	if added > size {
		t.Fatalf("ACK kept %d bytes of new resources from a %d-byte response", added, size)
	}
}

func (b *fuzzBaseline) checkNACK(t *testing.T, c *client, calls *fuzzCalls, k kind, resp *discoveryv3.DiscoveryResponse) {
	url := k.info().url
	if len(calls.nacks) != 1 {
		t.Fatalf("NACK: %d OnNACK calls, want 1", len(calls.nacks))
	}
	req := firstOfType(calls.sent, url)
	if len(calls.sent) != 1 || req == nil || req.GetErrorDetail().GetMessage() == "" ||
		req.GetVersionInfo() != b.res.Versions[url] || req.GetResponseNonce() != resp.GetNonce() {
		t.Fatalf("NACK requests = %v, want one with the kept version %q, nonce %q and an error_detail", calls.sent, b.res.Versions[url], resp.GetNonce())
	}
	if !sameView(c.res, b.res) || !slices.EqualFunc(c.subs[:], b.subs[:], slices.Equal) {
		t.Fatalf("NACK changed the view or the subscriptions (error %v)", calls.nacks[0])
	}
}

// checkValidated checks what the Validator was promised.
func checkValidated(t *testing.T, k kind, validated [][]proto.Message, subs subscriptions) {
	if len(validated) != 1 {
		t.Fatalf("Validator called %d times for one response", len(validated))
	}
	seen := map[string]bool{}
	for _, m := range validated[0] {
		if kindOfMessage(m) != k {
			t.Fatalf("Validator got a %T in a %s response", m, k)
		}
		name := k.info().name(m)
		if name == "" || seen[name] {
			t.Fatalf("Validator got an empty or duplicate name %q", name)
		}
		seen[name] = true
		if !k.info().wildcard {
			if _, ok := slices.BinarySearch(subs[k], name); !ok {
				t.Fatalf("Validator got %s %q, not subscribed (%v)", k, name, subs[k])
			}
		}
	}
}

// checkUnmutated fails when the baseline view, handed to OnUpdate once,
// changed.
func (b *fuzzBaseline) checkUnmutated(t *testing.T) {
	n := 0
	b.eachMessage(func(key string, m proto.Message) {
		n++
		if b.msgs[key] != m {
			t.Fatalf("a view handed to OnUpdate changed: %s", key)
		}
	})
	if n != len(b.msgs) || b.res.Versions[resource.ListenerType] != "v1" {
		t.Fatalf("a view handed to OnUpdate changed: %d resources, was %d", n, len(b.msgs))
	}
}

// sameView reports whether a and b hold the very same maps.
func sameView(a, b Resources) bool {
	same := func(x, y any) bool { return fmt.Sprintf("%p", x) == fmt.Sprintf("%p", y) }
	return same(a.Listeners, b.Listeners) && same(a.Routes, b.Routes) && same(a.Clusters, b.Clusters) &&
		same(a.Endpoints, b.Endpoints) && same(a.Secrets, b.Secrets) && maps.Equal(a.Versions, b.Versions)
}

func firstOfType(reqs []*discoveryv3.DiscoveryRequest, url string) *discoveryv3.DiscoveryRequest {
	for _, r := range reqs {
		if r.GetTypeUrl() == url {
			return r
		}
	}
	return nil
}

// TestXDSFuzzHarness checks that FuzzXDSResponse's seeds reach every
// outcome: the world at a new version is ACKed, a foreign resource and a
// rejected name are NACKed, an unknown type is ignored.
func TestXDSFuzzHarness(t *testing.T) {
	b := newFuzzBaseline(t)
	seeds := b.seeds(t)
	want := map[int]string{
		0:              "ack",     // LDS at v2
		2:              "nack",    // LDS resources under the CDS type URL
		3:              "ack",     // LDS in Resource wrappers
		4:              "nack",    // LDS with RDS resources inside
		len(seeds) - 3: "nack",    // a cluster the Validator rejects
		len(seeds) - 2: "ack",     // no listener at all
		len(seeds) - 1: "ignored", // not an xDS resource type
	}
	for i, w := range want {
		resp := new(discoveryv3.DiscoveryResponse)
		if err := proto.Unmarshal(seeds[i], resp); err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		if got := b.check(t, resp, len(seeds[i])); got != w {
			t.Errorf("seed %d: %s, want %s", i, got, w)
		}
	}
}
