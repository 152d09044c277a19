package client

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestTypedConfigURLs(t *testing.T) {
	for url, m := range map[string]proto.Message{
		hcmURL:        &hcmv3.HttpConnectionManager{},
		downstreamURL: &tlsv3.DownstreamTlsContext{},
		upstreamURL:   &tlsv3.UpstreamTlsContext{},
	} {
		if got := mustAny(t, m).GetTypeUrl(); got != url {
			t.Errorf("constant %q, proto says %q", url, got)
		}
	}
}

func TestReferences(t *testing.T) {
	// A listener with every SDS reference Envoy follows in a
	// DownstreamTlsContext, a TCP proxy chain (no RDS), and a default chain.
	full := &tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("server/a"), sds("server/a2")},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sds("trust/direct"),
			},
		},
		SessionTicketKeysType: &tlsv3.DownstreamTlsContext_SessionTicketKeysSdsSecretConfig{
			SessionTicketKeysSdsSecretConfig: sds("tickets"),
		},
	}
	tcp := &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{
		TypedConfig: mustAny(t, &tcpproxyv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "c"}}),
	}}
	l := listener(t, "l", "route-main", "server/b", "trust/combined", "server/default", "trust/default")
	l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
		Filters: []*listenerv3.Filter{tcp},
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, full)}},
	})
	// A filter with a non-standard name still is an HCM: Envoy picks the
	// factory by the typed_config's type.
	renamed := hcmFilter(t, "route-renamed")
	renamed.Name = "my-hcm"
	l.FilterChains[0].Filters = append(l.FilterChains[0].Filters, renamed)

	eds := edsCluster(t, "c-eds", "svc", "client/x", "trust/up")
	eds.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{{
		Name: "plain-or-tls",
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
			TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("client/match")},
			}}),
		}},
	}}
	got, err := references(
		map[string]*listenerv3.Listener{"l": l},
		map[string]*clusterv3.Cluster{"c-eds": eds, "c-own": edsCluster(t, "c-own", "", "", ""), "c-static": staticCluster("c-static", 1)},
	)
	if err != nil {
		t.Fatal(err)
	}
	for what, pair := range map[string][2][]string{
		"routes":    {sortedNames(got.routes), {"route-main", "route-renamed"}},
		"endpoints": {sortedNames(got.endpoints), {"c-own", "svc"}},
		"secrets": {sortedNames(got.secrets), {"client/match", "client/x", "server/a", "server/a2", "server/b", "server/default",
			"tickets", "trust/combined", "trust/default", "trust/direct", "trust/up"}},
	} {
		if !slices.Equal(pair[0], pair[1]) {
			t.Errorf("%s = %v, want %v", what, pair[0], pair[1])
		}
	}
}

func TestReferencesUndecodableTypedConfig(t *testing.T) {
	l := listener(t, "l", "r", "server/a", "trust/x", "", "")
	l.FilterChains[0].Filters[0].GetTypedConfig().Value = []byte{0xff, 0xff}
	_, err := references(map[string]*listenerv3.Listener{"l": l}, nil)
	const prefix = `listener "l": filter chain "l/server/a": filter "envoy.filters.network.http_connection_manager": decode envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager: proto:`
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("err = %v\nwant prefix %s", err, prefix)
	}

	c := edsCluster(t, "c", "", "client/x", "trust/up")
	c.TransportSocket.GetTypedConfig().Value = []byte{0xff, 0xff}
	_, err = references(nil, map[string]*clusterv3.Cluster{"c": c})
	const prefix2 = `cluster "c": transport socket "envoy.transport_sockets.tls": decode envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext: proto:`
	if err == nil || !strings.HasPrefix(err.Error(), prefix2) {
		t.Errorf("err = %v\nwant prefix %s", err, prefix2)
	}
}

func TestDecode(t *testing.T) {
	c1 := staticCluster("c1", 1)
	wrapped := mustAny(t, &discoveryv3.Resource{Name: "c1", Resource: mustAny(t, c1)})
	items, err := decode(kCluster, []*anypb.Any{wrapped})
	if err != nil || len(items) != 1 || items[0].name != "c1" || !proto.Equal(items[0].msg, c1) {
		t.Errorf("decode of a Resource wrapper = %v, %v", items, err)
	}

	noTimeout := staticCluster("c2", 2)
	noTimeout.ConnectTimeout = durationpb.New(0)
	for _, tc := range []struct {
		name string
		in   []*anypb.Any
		want string
	}{
		{"wrong type", []*anypb.Any{mustAny(t, routeConfig("r", "c"))},
			`resource 0 has type "type.googleapis.com/envoy.config.route.v3.RouteConfiguration" in a type.googleapis.com/envoy.config.cluster.v3.Cluster response`},
		{"duplicate", []*anypb.Any{mustAny(t, c1), mustAny(t, c1)}, `duplicate cluster "c1"`},
		{"no name", []*anypb.Any{mustAny(t, &clusterv3.Cluster{})}, `resource 0: cluster has no name`},
		{"empty wrapper", []*anypb.Any{mustAny(t, &discoveryv3.Resource{Name: "c1"})},
			`resource 0: Resource wrapper "c1" carries no resource (TTL heartbeats are not supported)`},
		{"proto rule", []*anypb.Any{mustAny(t, noTimeout)},
			`cluster "c2": invalid: invalid Cluster.ConnectTimeout: value must be greater than 0s`},
	} {
		if _, err := decode(kCluster, tc.in); err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v\nwant %s", tc.name, err, tc.want)
		}
	}
}

func TestNextSotWSemantics(t *testing.T) {
	cur := emptyResources()
	l := listener(t, "l", "r1", "server/a", "trust/x", "", "")
	u, err := next(cur, subscriptions{}, kListener, "l1", []named{{"l", l}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cur.Listeners) != 0 || len(cur.Versions) != 0 {
		t.Fatalf("next mutated its input: %v", cur)
	}
	if !slices.Equal(u.subs[kRoute], []string{"r1"}) || !slices.Equal(u.subs[kSecret], []string{"server/a", "trust/x"}) {
		t.Fatalf("subscriptions = %v", u.subs)
	}

	// RDS: a response carrying only some subscribed names keeps the others.
	l2 := listener(t, "l", "r1", "server/a", "trust/x", "server/b", "trust/x")
	l2.FilterChains = append(l2.FilterChains, listener(t, "x", "r2", "server/a", "trust/x", "", "").FilterChains[0])
	u, err = next(u.res, u.subs, kListener, "l2", []named{{"l", l2}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ = next(u.res, u.subs, kRoute, "r-a", []named{{"r1", routeConfig("r1", "c")}, {"r2", routeConfig("r2", "c")}})
	before := u.res
	u, _ = next(u.res, u.subs, kRoute, "r-b", []named{{"r2", routeConfig("r2", "c-new")}})
	if got := slices.Sorted(maps.Keys(u.res.Routes)); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Errorf("routes after a partial RDS response = %v, want [r1 r2]", got)
	}
	if before.Routes["r2"].GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster() != "c" {
		t.Errorf("a previous view's route changed")
	}

	// LDS is complete: a listener missing from the response is removed, and
	// the route only it referenced is dropped from the view.
	u, err = next(u.res, u.subs, kListener, "l3", []named{{"l", l}})
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(u.res.Routes)); !slices.Equal(got, []string{"r1"}) {
		t.Errorf("routes after r2 lost its listener = %v", got)
	}
	if got := slices.Sorted(maps.Keys(before.Routes)); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Errorf("pruning mutated a previous view: %v", got)
	}
	if got := u.res.Versions[resource.RouteType]; got != "r-b" {
		t.Errorf("RDS version = %q after pruning, want r-b (pruning is not an ACK)", got)
	}

	items := []named{{"a", &routev3.RouteConfiguration{Name: "a"}}, {"b", &routev3.RouteConfiguration{Name: "b"}}}
	if got := subscribed(items, []string{"b", "c"}); len(got) != 1 || got[0].name != "b" {
		t.Errorf("subscribed = %v", got)
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 5: 1600 * time.Millisecond, 8: 10 * time.Second, 1000: 10 * time.Second} {
		for range 50 {
			if d := DefaultBackoff(n); d < want/2 || d >= want {
				t.Fatalf("DefaultBackoff(%d) = %s, want in [%s, %s)", n, d, want/2, want)
			}
		}
	}
	for n, want := range map[int]time.Duration{1: 500 * time.Millisecond, 2: time.Second, 3: 2 * time.Second, 5: 8 * time.Second, 6: 10 * time.Second, 1 << 20: 10 * time.Second} {
		if d := defaultNACKBackoff(n); d != want {
			t.Errorf("defaultNACKBackoff(%d) = %s, want %s", n, d, want)
		}
	}
}
