package client

import (
	"errors"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/pki"
)

var allTypes = []string{resource.ListenerType, resource.ClusterType, resource.RouteType, resource.EndpointType, resource.SecretType}

// pemFixtures makes one CA and one leaf: real PEM for the test secrets.
func pemFixtures(t *testing.T) (caPEM, chainPEM, keyPEM []byte) {
	t.Helper()
	ca, err := pki.NewRootCA(pki.Options{CommonName: "xds client test CA"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServer(pki.Options{DNSNames: []string{"app.test"}})
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.KeyPEM(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pki.CertPEM(ca.Cert), leaf.ChainPEM(), key
}

// world1: one listener (a filter chain and a default filter chain), three
// clusters (two EDS, one with upstream mTLS, and a STATIC one).
func world1(t *testing.T) world {
	t.Helper()
	ca, chain, key := pemFixtures(t)
	return world{
		lv: "l1", rv: "r1", cv: "c1", ev: "e1", sv: "s1",
		listeners: []*listenerv3.Listener{listener(t, "l1", "r1", "server/a", "trust/x", "server/b", "trust/y")},
		routes:    []*routev3.RouteConfiguration{routeConfig("r1", "c1")},
		clusters: []*clusterv3.Cluster{
			edsCluster(t, "c1", "c1-eds", "client/x", "trust/up"),
			edsCluster(t, "c2", "", "", ""),
			staticCluster("c3", 8083),
		},
		endpoints: []*endpointv3.ClusterLoadAssignment{loadAssignment("c1-eds", 8081), loadAssignment("c2", 8082)},
		secrets: []*tlsv3.Secret{
			certSecret("server/a", chain, key), certSecret("server/b", chain, key), certSecret("client/x", chain, key),
			trustSecret("trust/x", ca), trustSecret("trust/y", ca), trustSecret("trust/up", ca),
		},
	}
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// checkByNameRequests asserts that every RDS, EDS and SDS request named
// something (an empty list would have been a wildcard subscription) unless
// allowEmpty, and that LDS and CDS requests named nothing.
func checkRequestNames(t *testing.T, reqs []*discoveryv3.DiscoveryRequest, allowEmpty bool) {
	t.Helper()
	for i, r := range reqs {
		switch r.GetTypeUrl() {
		case resource.ListenerType, resource.ClusterType:
			if len(r.GetResourceNames()) != 0 {
				t.Errorf("request %d (%s) names %v: LDS and CDS must be legacy wildcards", i, r.GetTypeUrl(), r.GetResourceNames())
			}
		default:
			if len(r.GetResourceNames()) == 0 && !allowEmpty {
				t.Errorf("request %d (%s) has no names: a wildcard subscription to a by-name type", i, r.GetTypeUrl())
			}
		}
	}
}

// lastNames is the name list of the last request of type url.
func lastNames(reqs []*discoveryv3.DiscoveryRequest, url string) []string {
	var out []string
	for _, r := range reqs {
		if r.GetTypeUrl() == url {
			out = r.GetResourceNames()
		}
	}
	return out
}

func TestSubscribesByNameAndACKsAllFiveTypes(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			checkNoLeaks(t)
			var lis net.Listener
			var target string
			if network == "tcp" {
				lis = listenTCP(t)
				target = lis.Addr().String()
			} else {
				path := filepath.Join(t.TempDir(), "xds.sock")
				var err error
				if lis, err = net.Listen("unix", path); err != nil {
					t.Fatal(err)
				}
				target = "unix://" + path
			}
			srv := startServer(t, lis, nil)
			w := world1(t)
			srv.set(t, w)
			h := runClient(t, Config{Target: target})

			_, got := h.updates.wait(t, 0, "a view at every world1 version", hasVersions(w.versions()))
			for _, url := range allTypes {
				srv.waitACK(t, url, w.versions()[url])
			}
			want := map[string][]string{
				"listeners": {"l1"},
				"routes":    {"r1"},
				"clusters":  {"c1", "c2", "c3"},
				"endpoints": {"c1-eds", "c2"},
				"secrets":   {"client/x", "server/a", "server/b", "trust/up", "trust/x", "trust/y"},
			}
			gotNames := map[string][]string{
				"listeners": keys(got.Listeners), "routes": keys(got.Routes), "clusters": keys(got.Clusters),
				"endpoints": keys(got.Endpoints), "secrets": keys(got.Secrets),
			}
			for what, names := range want {
				if !slices.Equal(gotNames[what], names) {
					t.Errorf("%s = %v, want %v", what, gotNames[what], names)
				}
			}
			if !proto.Equal(got.Clusters["c1"], w.clusters[0]) {
				t.Errorf("cluster c1 differs from what the server sent")
			}

			reqs := srv.reqs.all()
			first := reqs[0]
			if first.GetTypeUrl() != resource.ListenerType {
				t.Errorf("first request is %s, want LDS first", first.GetTypeUrl())
			}
			n := first.GetNode()
			if n.GetId() != testNode || n.GetCluster() != "certplane-test" || n.GetUserAgentName() != "certplane-proxy" || n.GetUserAgentVersion() != "test-1.2.3" {
				t.Errorf("node = %v, want id %q cluster certplane-test user_agent certplane-proxy/test-1.2.3", n, testNode)
			}
			checkRequestNames(t, reqs, false)
			// A by-name type is subscribed as soon as one name is known (CDS
			// may answer before LDS), so early requests may name a subset; the
			// last names the complete referenced set.
			for url, names := range map[string][]string{
				resource.RouteType:    {"r1"},
				resource.EndpointType: {"c1-eds", "c2"},
				resource.SecretType:   want["secrets"],
			} {
				for i, r := range reqs {
					for _, n := range r.GetResourceNames() {
						if r.GetTypeUrl() == url && !slices.Contains(names, n) {
							t.Errorf("request %d for %s names %q, not referenced", i, url, n)
						}
					}
				}
				if got := lastNames(reqs, url); !slices.Equal(got, names) {
					t.Errorf("last %s request names %v, want %v", url, got, names)
				}
			}
			for i, r := range reqs {
				if r.GetErrorDetail() != nil {
					t.Errorf("request %d is a NACK: %v", i, r.GetErrorDetail())
				}
			}
			if c := h.conn.all(); len(c) == 0 || !c[0] {
				t.Errorf("connection states %v, want true first", c)
			}
		})
	}
}

func TestValidatorNACKKeepsPreviousAndDoesNotLoop(t *testing.T) {
	checkNoLeaks(t)
	lis := listenTCP(t)
	srv := startServer(t, lis, nil)
	w1 := world1(t)
	srv.set(t, w1)
	const detail = `cluster "bad": lb_policy MAGLEV is not implemented by the certplane proxy`
	var validated []string
	validate := func(url string, res []proto.Message) error {
		validated = append(validated, url) // Run's goroutine only; read after Run returns
		if url != resource.ClusterType {
			return nil
		}
		for _, m := range res {
			if m.(*clusterv3.Cluster).GetName() == "bad" {
				return errors.New(detail)
			}
		}
		return nil
	}
	var nackCalls []string
	onNACK := func(url, version string, err error) { nackCalls = append(nackCalls, url+" "+version+": "+err.Error()) }
	h := runClient(t, Config{Target: lis.Addr().String(), Validate: validate, OnNACK: onNACK})
	h.updates.wait(t, 0, "world1", hasVersions(w1.versions()))
	for _, url := range allTypes {
		srv.waitACK(t, url, w1.versions()[url])
	}
	updatesBefore := h.updates.len()

	w2 := w1
	w2.cv = "c2"
	w2.clusters = append(slices.Clone(w1.clusters), staticCluster("bad", 9))
	respsBefore := srv.resps.len()
	srv.set(t, w2)
	i, nack := srv.reqs.wait(t, 0, "a CDS NACK", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == resource.ClusterType && r.GetErrorDetail() != nil
	})
	if nack.GetVersionInfo() != "c1" {
		t.Errorf("NACK version_info = %q, want the previous version c1", nack.GetVersionInfo())
	}
	if got := nack.GetErrorDetail(); got.GetCode() != int32(codes.InvalidArgument) || got.GetMessage() != detail {
		t.Errorf("error_detail = {code %d, %q}, want {code %d, %q}", got.GetCode(), got.GetMessage(), codes.InvalidArgument, detail)
	}
	var c2Nonce string
	for _, r := range srv.resps.all() {
		if r.GetTypeUrl() == resource.ClusterType && r.GetVersionInfo() == "c2" {
			c2Nonce = r.GetNonce()
			break
		}
	}
	if nack.GetResponseNonce() != c2Nonce {
		t.Errorf("NACK nonce = %q, want %q (the c2 response's)", nack.GetResponseNonce(), c2Nonce)
	}

	// go-control-plane re-sends the rejected version at once after a NACK;
	// the client must not turn that into a request storm.
	const window = 1200 * time.Millisecond
	nacks := srv.reqs.countFor(i, window, isType(resource.ClusterType))
	resent := 0
	for _, r := range srv.resps.all()[respsBefore:] {
		if r.GetTypeUrl() == resource.ClusterType {
			resent++
		}
	}
	t.Logf("in %s after the first NACK: %d CDS requests, %d CDS responses since the bad snapshot", window, nacks, resent)
	if nacks < 1 || nacks > 3 {
		t.Errorf("%d CDS requests within %s of the first NACK, want 1..3 (damped)", nacks, window)
	}
	if resent > 4 {
		t.Errorf("server sent %d CDS responses, want at most 4: the NACK loops", resent)
	}
	if n := h.updates.len(); n != updatesBefore {
		t.Fatalf("OnUpdate called %d times for a NACKed response", n-updatesBefore)
	}
	kept := h.updates.all()[updatesBefore-1]
	if got := keys(kept.Clusters); !slices.Equal(got, []string{"c1", "c2", "c3"}) || kept.Versions[resource.ClusterType] != "c1" {
		t.Errorf("after the NACK the view holds clusters %v at %q, want the previous [c1 c2 c3] at c1", got, kept.Versions[resource.ClusterType])
	}

	// The operator fixes the config: the client picks it up.
	w3 := w1
	w3.cv = "c3"
	w3.clusters = append(slices.Clone(w1.clusters), staticCluster("good", 10))
	srv.set(t, w3)
	srv.waitACK(t, resource.ClusterType, "c3")
	_, fixed := h.updates.wait(t, updatesBefore, "the fixed clusters", hasVersions(map[string]string{resource.ClusterType: "c3"}))
	if got := keys(fixed.Clusters); !slices.Equal(got, []string{"c1", "c2", "c3", "good"}) {
		t.Errorf("clusters after the fix = %v", got)
	}
	h.stop(t)
	if want := []string{resource.ClusterType + " c2: " + detail}; !slices.Equal(nackCalls, want) {
		t.Errorf("OnNACK calls %q, want %q (once per rejected version)", nackCalls, want)
	}
	if !slices.Contains(validated, resource.SecretType) || !slices.Contains(validated, resource.RouteType) {
		t.Errorf("validator saw only %v, want every type", validated)
	}
}

func TestClientChecksNACKUnknownFields(t *testing.T) {
	checkNoLeaks(t)
	lis := listenTCP(t)
	srv := startServer(t, lis, nil)
	w1 := world1(t)
	srv.set(t, w1)
	h := runClient(t, Config{Target: lis.Addr().String()})
	h.updates.wait(t, 0, "world1", hasVersions(w1.versions()))
	srv.waitACK(t, resource.ListenerType, "l1")

	// A listener whose HttpConnectionManager carries field 999, which this
	// build of the API does not know: the proxy cannot honour it.
	bad := listener(t, "l-bad", "r1", "server/a", "trust/x", "", "")
	tc := bad.FilterChains[0].Filters[0].GetTypedConfig()
	tc.Value = append(slices.Clone(tc.Value), 0xb8, 0x3e, 0x01) // field 999, varint 1
	w2 := w1
	w2.lv = "l2"
	w2.listeners = append(slices.Clone(w1.listeners), bad)
	srv.set(t, w2)
	_, nack := srv.reqs.wait(t, 0, "an LDS NACK", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == resource.ListenerType && r.GetErrorDetail() != nil
	})
	const want = `listener "l-bad": unknown field 999 in .filter_chains[0].filters[0].typed_config.(envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager)`
	if got := nack.GetErrorDetail().GetMessage(); got != want {
		t.Errorf("error_detail = %q\nwant           %q", got, want)
	}
	if nack.GetVersionInfo() != "l1" {
		t.Errorf("NACK version_info = %q, want l1", nack.GetVersionInfo())
	}
}

func TestListenerAddRemoveUpdatesSubscriptions(t *testing.T) {
	checkNoLeaks(t)
	lis := listenTCP(t)
	srv := startServer(t, lis, nil)
	w1 := world1(t)
	srv.set(t, w1)
	h := runClient(t, Config{Target: lis.Addr().String()})
	_, first := h.updates.wait(t, 0, "world1", hasVersions(w1.versions()))
	for _, url := range allTypes {
		srv.waitACK(t, url, w1.versions()[url])
	}
	firstRoutes := keys(first.Routes)

	// Add l2: new route r2 and new secret server/c; trust/x is shared.
	w2 := w1
	w2.lv, w2.rv, w2.sv = "l2", "r2", "s2"
	w2.listeners = append(slices.Clone(w1.listeners), listener(t, "l2", "r2", "server/c", "trust/x", "", ""))
	w2.routes = append(slices.Clone(w1.routes), routeConfig("r2", "c2"))
	w2.secrets = append(slices.Clone(w1.secrets), certSecret("server/c", []byte("unused"), []byte("unused")))
	from := srv.reqs.len()
	srv.set(t, w2)
	srv.reqs.wait(t, from, "RDS [r1 r2]", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == resource.RouteType && slices.Equal(r.GetResourceNames(), []string{"r1", "r2"})
	})
	wantSecrets2 := []string{"client/x", "server/a", "server/b", "server/c", "trust/up", "trust/x", "trust/y"}
	srv.reqs.wait(t, from, "SDS with server/c", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == resource.SecretType && slices.Equal(r.GetResourceNames(), wantSecrets2)
	})
	_, v2 := h.updates.wait(t, 0, "world2", hasVersions(w2.versions()))
	if got := keys(v2.Routes); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Errorf("routes = %v, want [r1 r2]", got)
	}
	if got := keys(v2.Secrets); !slices.Equal(got, wantSecrets2) {
		t.Errorf("secrets = %v, want %v", got, wantSecrets2)
	}

	// Remove l1: r1, server/a, server/b and trust/y are no longer referenced.
	w3 := w2
	w3.lv, w3.rv, w3.sv = "l3", "r3", "s3"
	w3.listeners = w2.listeners[1:]
	w3.routes = w2.routes[1:]
	w3.secrets = nil
	for _, s := range w2.secrets {
		if n := s.GetName(); n != "server/a" && n != "server/b" && n != "trust/y" {
			w3.secrets = append(w3.secrets, s)
		}
	}
	from = srv.reqs.len()
	srv.set(t, w3)
	srv.reqs.wait(t, from, "RDS [r2]", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == resource.RouteType && slices.Equal(r.GetResourceNames(), []string{"r2"})
	})
	wantSecrets3 := []string{"client/x", "server/c", "trust/up", "trust/x"}
	srv.reqs.wait(t, from, "SDS without l1's secrets", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == resource.SecretType && slices.Equal(r.GetResourceNames(), wantSecrets3)
	})
	_, v3 := h.updates.wait(t, 0, "world3", hasVersions(w3.versions()))
	if got := keys(v3.Listeners); !slices.Equal(got, []string{"l2"}) {
		t.Errorf("listeners = %v, want [l2]", got)
	}
	if got := keys(v3.Routes); !slices.Equal(got, []string{"r2"}) {
		t.Errorf("routes = %v, want [r2]", got)
	}
	if got := keys(v3.Secrets); !slices.Equal(got, wantSecrets3) {
		t.Errorf("secrets = %v, want %v", got, wantSecrets3)
	}
	checkRequestNames(t, srv.reqs.all(), false)

	// Remove every listener: RDS is unsubscribed with an empty list (allowed
	// once subscribed), and the view holds no routes.
	w4 := w3
	w4.lv, w4.rv, w4.sv = "l4", "r4", "s4"
	w4.listeners, w4.routes = nil, nil
	w4.secrets = nil
	for _, s := range w3.secrets {
		if n := s.GetName(); n == "client/x" || n == "trust/up" {
			w4.secrets = append(w4.secrets, s)
		}
	}
	from = srv.reqs.len()
	srv.set(t, w4)
	srv.reqs.wait(t, from, "RDS unsubscribe", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == resource.RouteType && len(r.GetResourceNames()) == 0
	})
	_, v4 := h.updates.wait(t, 0, "no listeners", func(r Resources) bool {
		return len(r.Listeners) == 0 && r.Versions[resource.SecretType] == "s4"
	})
	if len(v4.Routes) != 0 || !slices.Equal(keys(v4.Secrets), []string{"client/x", "trust/up"}) {
		t.Errorf("with no listeners: routes %v secrets %v", keys(v4.Routes), keys(v4.Secrets))
	}

	// Views already handed out are never mutated (copy-on-write).
	if got := keys(first.Routes); !slices.Equal(got, firstRoutes) {
		t.Errorf("first view's routes changed from %v to %v", firstRoutes, got)
	}
}

func TestReconnectKeepsResourcesAndResumesVersions(t *testing.T) {
	checkNoLeaks(t)
	lis := listenTCP(t)
	addr := lis.Addr().String()
	srvA := startServer(t, lis, nil)
	w1 := world1(t)
	srvA.set(t, w1)
	h := runClient(t, Config{Target: addr})
	h.updates.wait(t, 0, "world1", hasVersions(w1.versions()))
	for _, url := range allTypes {
		srvA.waitACK(t, url, w1.versions()[url])
	}
	h.conn.wait(t, 0, "connected", func(up bool) bool { return up })
	updates := h.updates.len()
	held := h.updates.all()[updates-1]

	srvA.stop()
	down, _ := h.conn.wait(t, 0, "disconnected", func(up bool) bool { return !up })
	// Reconnection attempts back off with a growing attempt count.
	h.attempts.wait(t, 0, "three failed reconnection attempts", func(n int) bool { return n >= 3 })
	att := h.attempts.all()
	for i, n := range att[:3] {
		if n != i+1 {
			t.Fatalf("backoff attempts %v, want 1, 2, 3, ...", att)
		}
	}
	if n := h.updates.len(); n != updates {
		t.Fatalf("OnUpdate called %d times while the control plane was away", n-updates)
	}

	// A new control plane on the same address, with no snapshot yet.
	lis2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	srvB := startServer(t, lis2, nil)
	h.conn.wait(t, down+1, "reconnected", func(up bool) bool { return up })
	// Its initial requests carry the last ACKed versions and current names.
	for _, url := range allTypes {
		_, r := srvB.reqs.wait(t, 0, "initial request for "+url, isType(url))
		if r.GetVersionInfo() != w1.versions()[url] || r.GetResponseNonce() != "" {
			t.Errorf("initial %s request: version %q nonce %q, want version %q and no nonce", url, r.GetVersionInfo(), r.GetResponseNonce(), w1.versions()[url])
		}
	}
	reqs := srvB.reqs.all()
	if reqs[0].GetNode().GetId() != testNode {
		t.Errorf("first request on the new stream has node %v", reqs[0].GetNode())
	}
	if got := lastNames(reqs, resource.SecretType); !slices.Equal(got, keys(held.Secrets)) {
		t.Errorf("initial SDS names %v, want %v", got, keys(held.Secrets))
	}
	if n := h.updates.len(); n != updates {
		t.Fatalf("OnUpdate called with no snapshot on the new server")
	}

	// The new server publishes a changed cluster set: every update still
	// holds everything kept from before the outage.
	w2 := w1
	w2.cv = "c2"
	w2.clusters = append(slices.Clone(w1.clusters), staticCluster("c4", 8084))
	srvB.set(t, w2)
	_, after := h.updates.wait(t, updates, "world2 after reconnect", hasVersions(w2.versions()))
	if !slices.Equal(keys(after.Clusters), []string{"c1", "c2", "c3", "c4"}) || !slices.Equal(keys(after.Secrets), keys(held.Secrets)) {
		t.Errorf("after reconnect: clusters %v secrets %v", keys(after.Clusters), keys(after.Secrets))
	}
	for _, v := range h.updates.all()[updates:] {
		if len(v.Listeners) != 1 || len(v.Routes) != 1 || len(v.Endpoints) != 2 || len(v.Secrets) != 6 {
			t.Errorf("a view after reconnect lost resources: %d listeners %d routes %d endpoints %d secrets",
				len(v.Listeners), len(v.Routes), len(v.Endpoints), len(v.Secrets))
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Target: "192.0.2.10:18000", NodeID: "n"}, `xds client: plaintext TCP to non-loopback target "192.0.2.10:18000" refused (any local user can listen there and serve its own keys and backends): use a unix:// socket or TLS, or set Insecure to allow it`},
		{Config{Target: "xds.example:18000", NodeID: "n"}, `xds client: plaintext TCP to non-loopback target "xds.example:18000" refused (any local user can listen there and serve its own keys and backends): use a unix:// socket or TLS, or set Insecure to allow it`},
		{Config{Target: "127.0.0.1:18000", NodeID: "n"}, `xds client: plaintext TCP to loopback target "127.0.0.1:18000" refused (any local user can listen there and serve its own keys and backends): use a unix:// socket or TLS, or set Insecure to allow it`},
		{Config{Target: "", NodeID: "n"}, `xds client: empty target: want host:port or unix:///path`},
		{Config{Target: "dns:///xds.example:18000", NodeID: "n"}, `xds client: target "dns:///xds.example:18000": unsupported scheme: want host:port or unix:///path`},
		{Config{Target: "127.0.0.1:0", NodeID: "n"}, `xds client: target "127.0.0.1:0": port "0" is not a number in 1..65535`},
		{Config{Target: "unix://", NodeID: "n"}, `xds client: target "unix://" has no socket path: want unix:///path`},
		{Config{Target: "127.0.0.1:18000", Insecure: true}, `xds client: empty NodeID: the control plane keys snapshots by node id`},
	} {
		err := Run(t.Context(), tc.cfg)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Run(%q) = %v\nwant %s", tc.cfg.Target, err, tc.want)
		}
	}
}

func TestPlaintextPolicy(t *testing.T) {
	for _, tc := range []struct {
		target   string
		insecure bool
		ok       bool
	}{
		// Loopback TCP is plaintext to every local user: a process that
		// binds the port first would feed the proxy its own keys.
		{"127.0.0.1:18000", false, false},
		{"127.8.9.10:18000", false, false},
		{"[::1]:18000", false, false},
		{"localhost:18000", false, false},
		{"127.0.0.1:18000", true, true},
		{"unix:///run/certplane/xds.sock", false, true},
		{"10.0.0.5:18000", false, false},
		{"[2001:db8::1]:18000", false, false},
		{"xds.internal:18000", false, false},
		{"10.0.0.5:18000", true, true},
		{"xds.internal:18000", true, true},
	} {
		creds, err := transportCredentials(&Config{Target: tc.target, Insecure: tc.insecure})
		if (err == nil) != tc.ok {
			t.Errorf("%s insecure=%v: err = %v, want ok=%v", tc.target, tc.insecure, err, tc.ok)
			continue
		}
		if err == nil && creds.Info().SecurityProtocol != "insecure" {
			t.Errorf("%s: security protocol %q, want insecure", tc.target, creds.Info().SecurityProtocol)
		}
	}
}

// TestPrepareCommit: every response the client accepts is prepared with the
// view it yields and then committed once, before OnUpdate; a response that
// Prepare refuses is NACKed and never committed.
func TestPrepareCommit(t *testing.T) {
	checkNoLeaks(t)
	lis := listenTCP(t)
	srv := startServer(t, lis, nil)
	w1 := world1(t)
	srv.set(t, w1)
	const detail = "cluster bad refused by Prepare"
	type event struct {
		what, url, version string
		view               Resources
	}
	events := newRecorder[event]()
	prepare := func(ch Change) (func(), error) {
		if ch.View.Versions[ch.TypeURL] != ch.Version {
			t.Errorf("%s: the view is at %q, not the change's version %q", ch.TypeURL, ch.View.Versions[ch.TypeURL], ch.Version)
		}
		for _, m := range ch.Resources {
			if c, ok := m.(*clusterv3.Cluster); ok && c.GetName() == "bad" {
				return nil, errors.New(detail)
			}
		}
		events.add(event{"prepare", ch.TypeURL, ch.Version, ch.View})
		return func() { events.add(event{"commit", ch.TypeURL, ch.Version, ch.View}) }, nil
	}
	h := runClient(t, Config{Target: lis.Addr().String(), Prepare: prepare})
	h.updates.wait(t, 0, "world1", hasVersions(w1.versions()))

	w2 := w1
	w2.cv = "c2"
	w2.clusters = append(slices.Clone(w1.clusters), staticCluster("bad", 9))
	srv.set(t, w2)
	srv.reqs.wait(t, 0, "a CDS NACK", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == resource.ClusterType && r.GetErrorDetail().GetMessage() == detail
	})
	h.stop(t)

	evs, updates := events.all(), h.updates.all()
	if len(evs) != 2*len(updates) {
		t.Fatalf("%d prepare/commit events for %d updates, want a pair each", len(evs), len(updates))
	}
	for i, u := range updates {
		p, c := evs[2*i], evs[2*i+1]
		if p.what != "prepare" || c.what != "commit" || p.url != c.url || p.version != c.version {
			t.Errorf("update %d: events %s %s@%s, %s %s@%s; want the prepare of a change, then its commit", i, p.what, p.url, p.version, c.what, c.url, c.version)
		}
		if !maps.Equal(u.Versions, c.view.Versions) {
			t.Errorf("update %d: OnUpdate got versions %v, the committed view %v", i, u.Versions, c.view.Versions)
		}
	}
	for _, e := range evs {
		if e.url == resource.ClusterType && e.version == "c2" {
			t.Errorf("the refused c2 clusters were %s", e.what+"ed")
		}
	}
}
