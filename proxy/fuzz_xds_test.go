package proxy

import (
	"maps"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/xds/client"
)

// FuzzProxyXDS feeds arbitrary bytes, as a serialized DiscoveryResponse, to
// the proxy's side of the xDS client: the resources it decodes go through
// Proxy.Validate (the client's Validator) and, when accepted, through the
// state build of Proxy.Update, on a proxy that serves a certplane world
// (verify, optional, passthrough and off listeners, CRLs, upstream mTLS).
// xds/client's FuzzXDSResponse covers the client's own decoding; this target
// exists because xds/client cannot import proxy.
//
// Resources are decoded as the client guarantees before it calls the
// Validator (the response's type, proto rules, a unique non-empty name);
// unknown fields are not refused here, which only widens the inputs: the
// proxy never sees unknown fields through its getters.
//
// Checked per input: no panic; Validate leaves the served state alone; and
// what Validate accepts, the build applies: no resource of the response
// ends among the build's problems ("resource not applied, previous version
// kept"), which would mean the proxy ACKed what it then does not serve.
// The build does not bind sockets or start health checks (reconcile is
// not run), so fuzzed addresses never reach the network.
func FuzzProxyXDS(f *testing.F) {
	w := newXDSFuzzWorld(f)
	for _, seed := range w.seeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		resp := new(discoveryv3.DiscoveryResponse)
		if proto.Unmarshal(data, resp) != nil {
			return
		}
		w.check(t, resp)
	})
}

// xdsFuzzWorld is a proxy whose state holds the accepted world.
type xdsFuzzWorld struct {
	p    *Proxy
	base *state
	rs   *resourceSet
}

func newXDSFuzzWorld(tb testing.TB) *xdsFuzzWorld {
	serverCA := pkitest.NewCA(tb, "Fuzz Server CA")
	clientCA := pkitest.NewCA(tb, "Fuzz Client CA")
	issuing := clientCA.Intermediate("Fuzz Issuing CA")
	issuing.Revoke(issuing.Client("mallory"))
	upstreamCA := pkitest.NewCA(tb, "Fuzz Upstream CA")
	rs := &resourceSet{}
	rs.add(
		keyPairSecret("server/proxy", serverCA.Server("proxy.test")),
		keyPairSecret("client/edge", upstreamCA.Client("edge")),
		trustSecret("trust/clients", append(clientCA.CertPEM(), issuing.CertPEM()...), append(clientCA.CRLPEM(), issuing.CRLPEM()...)),
		trustSecret("trust/upstream", upstreamCA.CertPEM(), nil),
	)
	rs.add(backendSpec{name: "app", endpoints: []string{"127.0.0.1:1", "127.0.0.2:1"}, hcPath: "/healthz"}.build()...)
	rs.add(backendSpec{name: "secure", endpoints: []string{"127.0.0.1:2"}, trust: "trust/upstream", cert: "client/edge", sni: "backend.test"}.build()...)
	routes := [][2]string{{"/secure/", "secure"}, {"/", "app"}}
	for _, l := range []listenerSpec{
		{name: "verify", certs: []string{"server/proxy"}, mode: "verify", trust: "trust/clients", xfcc: true, alb: true, routes: routes},
		{name: "optional", certs: []string{"server/proxy"}, mode: "optional", trust: "trust/clients", leafOnly: true, sans: uriSAN("spiffe://fuzz/alice"), routes: routes},
		{name: "passthrough", certs: []string{"server/proxy"}, mode: "passthrough", alb: true, routes: routes},
		{name: "off", certs: []string{"server/proxy"}, mode: "off", routes: routes},
	} {
		rs.add(l.build()...)
	}
	p := New(Options{})
	// The world's clusters have had their first health-check round (no
	// checker runs here), so its listeners do not warm on them.
	runtimes := map[string]*clusterRuntime{}
	first := (&builder{prev: emptyState(), runtimes: runtimes, mtlsOptions: p.mtlsOptions}).build(worldResources(rs))
	for name, cs := range first.clusters {
		cs.rt.hcKey = "first round done"
		cs.rt.warm.Store(true)
		runtimes[name] = cs.rt
	}
	b := &builder{prev: emptyState(), runtimes: runtimes, mtlsOptions: p.mtlsOptions}
	base := b.build(worldResources(rs))
	if len(b.problems) > 0 || len(base.warming) > 0 || len(base.listeners) != 4 {
		tb.Fatalf("fuzz world does not build: problems %v, warming %v, %d listeners", b.problems, base.warming, len(base.listeners))
	}
	p.state.Store(base)
	return &xdsFuzzWorld{p: p, base: base, rs: rs}
}

// worldResources is the client's view of rs, every type at version v1.
func worldResources(rs *resourceSet) client.Resources {
	res := client.Resources{
		Listeners: byName[*listenerv3.Listener](rs.listeners),
		Routes:    byName[*routev3.RouteConfiguration](rs.routes),
		Clusters:  byName[*clusterv3.Cluster](rs.clusters),
		Endpoints: byName[*endpointv3.ClusterLoadAssignment](rs.endpoints),
		Secrets:   byName[*tlsv3.Secret](rs.secrets),
		Versions:  map[string]string{},
	}
	for _, url := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType, resource.SecretType} {
		res.Versions[url] = "v1"
	}
	return res
}

func byName[T proto.Message](rs []types.Resource) map[string]T {
	out := map[string]T{}
	for _, r := range rs {
		out[resourceName(r)] = r.(T)
	}
	return out
}

// resourceName is the name the xDS client keys a resource by.
func resourceName(m proto.Message) string {
	if cla, ok := m.(*endpointv3.ClusterLoadAssignment); ok {
		return cla.GetClusterName()
	}
	_, name := describe(m)
	return name
}

// seeds are the world's responses at a new version, plus a few that the
// proxy must refuse: an expired server certificate, garbage PEM, a CRL
// without its CA.
func (w *xdsFuzzWorld) seeds(tb testing.TB) [][]byte {
	var out [][]byte
	add := func(url string, rs []types.Resource) {
		resp := &discoveryv3.DiscoveryResponse{TypeUrl: url, VersionInfo: "v2", Nonce: "n"}
		for _, r := range rs {
			a, err := anypb.New(r)
			if err != nil {
				tb.Fatal(err)
			}
			resp.Resources = append(resp.Resources, a)
		}
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, data)
	}
	add(resource.ListenerType, w.rs.listeners)
	add(resource.RouteType, w.rs.routes)
	add(resource.ClusterType, w.rs.clusters)
	add(resource.EndpointType, w.rs.endpoints)
	add(resource.SecretType, w.rs.secrets)
	ca := pkitest.NewCA(tb, "Fuzz Other CA")
	add(resource.SecretType, []types.Resource{
		keyPairSecret("server/proxy", ca.Server("proxy.test", pkitest.Expired())),
		trustSecret("trust/upstream", []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), nil),
		trustSecret("trust/clients", ca.CertPEM(), pkitest.NewCA(tb, "Fuzz Stranger CA").CRLPEM()),
	})
	return out
}

// check runs one response through Validate's checks and, when accepted,
// the build of the candidate.
func (w *xdsFuzzWorld) check(t *testing.T, resp *discoveryv3.DiscoveryResponse) {
	url := resp.GetTypeUrl()
	msgs, ok := decodeAsClient(resp)
	if !ok {
		return // the client NACKs it before the proxy sees it
	}
	parsed, err := w.p.check(msgs, w.p.state.Load(), true)
	if w.p.state.Load() != w.base {
		t.Fatal("Validate changed the served state")
	}
	// Prepare refuses what Validate refuses, with the same error_detail,
	// though it takes the listener and route errors from its candidate.
	_, perr := w.p.Prepare(client.Change{TypeURL: url, Resources: msgs, View: w.view(url, msgs)})
	if (perr == nil) != (err == nil) || perr != nil && perr.Error() != err.Error() {
		t.Fatalf("Prepare: %v\nValidate: %v", perr, err)
	}
	if w.p.state.Load() != w.base {
		t.Fatal("Prepare changed the served state")
	}
	if err != nil {
		if err.Error() == "" {
			t.Fatal("Validate refused with an empty error: the NACK would carry no error_detail")
		}
		return
	}
	b := &builder{prev: w.base, runtimes: map[string]*clusterRuntime{}, mtlsOptions: w.p.mtlsOptions, validated: parsed}
	b.build(w.view(url, msgs))
	for _, m := range msgs {
		kind, name := describe(m)
		key := map[string]string{"listener": "listener/", "route configuration": "route/", "cluster": "cluster/", "secret": "secret/"}[kind] + name
		if problem, ok := b.problems[key]; ok {
			t.Fatalf("Validate accepted %s %q, the build does not apply it: %s", kind, name, problem)
		}
	}
}

// decodeAsClient decodes resp's resources with the guarantees the xDS client
// gives its Validator; false when the client would refuse them itself.
func decodeAsClient(resp *discoveryv3.DiscoveryResponse) ([]proto.Message, bool) {
	seen := map[string]bool{}
	var out []proto.Message
	for _, a := range resp.GetResources() {
		if a.GetTypeUrl() != resp.GetTypeUrl() {
			return nil, false
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, false
		}
		if v, ok := m.(interface{ ValidateAll() error }); !ok || v.ValidateAll() != nil {
			return nil, false
		}
		name := resourceName(m)
		if name == "" || seen[name] {
			return nil, false
		}
		seen[name] = true
		out = append(out, m)
	}
	switch resp.GetTypeUrl() {
	case resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType, resource.SecretType:
		return out, true
	}
	return nil, false
}

// view is the client's view after accepting msgs as type url: LDS and CDS
// replace their type, the by-name types update the names they carry.
func (w *xdsFuzzWorld) view(url string, msgs []proto.Message) client.Resources {
	res := w.base.res
	res.Versions = maps.Clone(res.Versions)
	res.Versions[url] = "v2"
	switch url {
	case resource.ListenerType:
		res.Listeners = map[string]*listenerv3.Listener{}
		putAll(res.Listeners, msgs)
	case resource.ClusterType:
		res.Clusters = map[string]*clusterv3.Cluster{}
		putAll(res.Clusters, msgs)
	case resource.RouteType:
		res.Routes = maps.Clone(res.Routes)
		putAll(res.Routes, msgs)
	case resource.EndpointType:
		res.Endpoints = maps.Clone(res.Endpoints)
		putAll(res.Endpoints, msgs)
	case resource.SecretType:
		res.Secrets = maps.Clone(res.Secrets)
		putAll(res.Secrets, msgs)
	}
	return res
}

func putAll[T proto.Message](m map[string]T, msgs []proto.Message) {
	for _, x := range msgs {
		m[resourceName(x)] = x.(T)
	}
}

// TestXDSFuzzWorld checks that FuzzProxyXDS's seeds reach both outcomes:
// the world at a new version is accepted and built, the bad secrets are
// refused by Validate.
func TestXDSFuzzWorld(t *testing.T) {
	w := newXDSFuzzWorld(t)
	seeds := w.seeds(t)
	for i, data := range seeds {
		resp := new(discoveryv3.DiscoveryResponse)
		if err := proto.Unmarshal(data, resp); err != nil {
			t.Fatal(err)
		}
		msgs, ok := decodeAsClient(resp)
		if !ok {
			t.Fatalf("seed %d does not decode", i)
		}
		err := w.p.Validate(resp.GetTypeUrl(), msgs)
		if last := i == len(seeds)-1; (err != nil) != last {
			t.Errorf("seed %d (%s): Validate = %v", i, resp.GetTypeUrl(), err)
		} else if last && !strings.Contains(err.Error(), "trust/upstream") {
			t.Errorf("bad secrets refused for another reason: %v", err)
		}
		w.check(t, resp)
	}
	if _, ok := decodeAsClient(&discoveryv3.DiscoveryResponse{TypeUrl: "x", Resources: []*anypb.Any{{TypeUrl: "y"}}}); ok {
		t.Error("a resource of another type decoded")
	}
}
