package client

import (
	"context"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	testNode = "proxy-1"
	waitFor  = 15 * time.Second
)

// recorder collects values from callbacks and lets a test wait for one.
type recorder[T any] struct {
	mu     sync.Mutex
	items  []T
	notify chan struct{}
}

func newRecorder[T any]() *recorder[T] { return &recorder[T]{notify: make(chan struct{})} }

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, v)
	close(r.notify)
	r.notify = make(chan struct{})
}

func (r *recorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.items)
}

func (r *recorder[T]) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

// wait returns the index and value of the first item at or after from that
// matches, failing the test after waitFor.
func (r *recorder[T]) wait(t *testing.T, from int, what string, match func(T) bool) (int, T) {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for i := from; i < len(r.items); i++ {
			if match(r.items[i]) {
				v := r.items[i]
				r.mu.Unlock()
				return i, v
			}
		}
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			var zero T
			t.Fatalf("timed out after %s waiting for %s", waitFor, what)
			return -1, zero
		}
	}
}

// countFor counts the items at or after from that match, over a window that
// ends at window: the tool for asserting that something does NOT keep
// happening (a loop).
func (r *recorder[T]) countFor(from int, window time.Duration, match func(T) bool) int {
	end := time.NewTimer(window)
	defer end.Stop()
	for {
		r.mu.Lock()
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ch:
		case <-end.C:
			n := 0
			for _, v := range r.all()[from:] {
				if match(v) {
					n++
				}
			}
			return n
		}
	}
}

// xdsServer is a real go-control-plane ADS server: the ADS snapshot cache,
// server.NewServer, and the generated gRPC registration.
type xdsServer struct {
	cache   cache.SnapshotCache
	grpc    *grpc.Server
	addr    string
	cancel  context.CancelFunc
	done    chan struct{}
	reqs    *recorder[*discoveryv3.DiscoveryRequest]
	resps   *recorder[*discoveryv3.DiscoveryResponse]
	streams *recorder[*peer.Peer]
	once    sync.Once
}

func startServer(t *testing.T, lis net.Listener, creds credentials.TransportCredentials) *xdsServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &xdsServer{
		cache:   cache.NewSnapshotCache(true, cache.IDHash{}, nil),
		addr:    lis.Addr().String(),
		cancel:  cancel,
		done:    make(chan struct{}),
		reqs:    newRecorder[*discoveryv3.DiscoveryRequest](),
		resps:   newRecorder[*discoveryv3.DiscoveryResponse](),
		streams: newRecorder[*peer.Peer](),
	}
	cb := serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, _ int64, _ string) error {
			p, _ := peer.FromContext(ctx)
			s.streams.add(p)
			return nil
		},
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			s.reqs.add(proto.Clone(req).(*discoveryv3.DiscoveryRequest))
			return nil
		},
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.resps.add(proto.Clone(resp).(*discoveryv3.DiscoveryResponse))
		},
	}
	var opts []grpc.ServerOption
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	s.grpc = grpc.NewServer(opts...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s.grpc, serverv3.NewServer(ctx, s.cache, cb))
	go func() {
		defer close(s.done)
		_ = s.grpc.Serve(lis)
	}()
	t.Cleanup(s.stop)
	return s
}

// stop kills the server and every stream, as a crashed control plane would.
func (s *xdsServer) stop() {
	s.once.Do(func() {
		s.cancel()
		s.grpc.Stop()
		<-s.done
	})
}

func (s *xdsServer) set(t *testing.T, w world) {
	t.Helper()
	snap := w.snapshot(t)
	if err := s.cache.SetSnapshot(context.Background(), testNode, snap); err != nil {
		t.Fatalf("SetSnapshot: %v", err)
	}
}

// requestsOf filters requests by type URL.
func isType(url string) func(*discoveryv3.DiscoveryRequest) bool {
	return func(r *discoveryv3.DiscoveryRequest) bool { return r.GetTypeUrl() == url }
}

// ackOf matches the ACK of the response of type url at version.
func (s *xdsServer) waitACK(t *testing.T, url, version string) *discoveryv3.DiscoveryRequest {
	t.Helper()
	_, resp := s.resps.wait(t, 0, url+" response at version "+version, func(r *discoveryv3.DiscoveryResponse) bool {
		return r.GetTypeUrl() == url && r.GetVersionInfo() == version
	})
	_, req := s.reqs.wait(t, 0, "ACK of "+url+" version "+version, func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == url && r.GetVersionInfo() == version && r.GetErrorDetail() == nil
	})
	nonces := map[string]bool{}
	for _, r := range s.resps.all() {
		if r.GetTypeUrl() == url && r.GetVersionInfo() == version {
			nonces[r.GetNonce()] = true
		}
	}
	if !nonces[req.GetResponseNonce()] {
		t.Fatalf("ACK of %s %s carries nonce %q, not the nonce of a response at that version (%v); first such response nonce %q",
			url, version, req.GetResponseNonce(), nonces, resp.GetNonce())
	}
	return req
}

// world is a set of resources with one version per type.
type world struct {
	lv, rv, cv, ev, sv string
	listeners          []*listenerv3.Listener
	routes             []*routev3.RouteConfiguration
	clusters           []*clusterv3.Cluster
	endpoints          []*endpointv3.ClusterLoadAssignment
	secrets            []*tlsv3.Secret
}

func items[T types.Resource](in []T) []types.Resource {
	out := make([]types.Resource, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}

func (w world) snapshot(t *testing.T) *cache.Snapshot {
	t.Helper()
	s := &cache.Snapshot{}
	s.Resources[types.Listener] = cache.NewResources(w.lv, items(w.listeners))
	s.Resources[types.Route] = cache.NewResources(w.rv, items(w.routes))
	s.Resources[types.Cluster] = cache.NewResources(w.cv, items(w.clusters))
	s.Resources[types.Endpoint] = cache.NewResources(w.ev, items(w.endpoints))
	s.Resources[types.Secret] = cache.NewResources(w.sv, items(w.secrets))
	if err := s.Consistent(); err != nil {
		t.Fatalf("test snapshot inconsistent: %v", err)
	}
	return s
}

func (w world) versions() map[string]string {
	return map[string]string{
		resource.ListenerType: w.lv, resource.RouteType: w.rv, resource.ClusterType: w.cv,
		resource.EndpointType: w.ev, resource.SecretType: w.sv,
	}
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sds(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ads()}
}

func hcmFilter(t *testing.T, route string) *listenerv3.Filter {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: route,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: route, ConfigSource: ads(),
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})},
		}},
	}
	return &listenerv3.Filter{
		Name:       "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)},
	}
}

// downstreamTLS references cert over SDS and trust through a combined
// validation context, as certplane's listeners do.
func downstreamTLS(t *testing.T, cert, trust string) *corev3.TransportSocket {
	t.Helper()
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(cert)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
				ValidationContextSdsSecretConfig: sds(trust),
			},
		},
	}}
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, ctx)},
	}
}

// listener has one filter chain with cert and trust; a non-empty defaultCert
// adds a default filter chain whose context names its trust directly
// (validation_context_sds_secret_config).
func listener(t *testing.T, name, route, cert, trust, defaultCert, defaultTrust string) *listenerv3.Listener {
	t.Helper()
	l := &listenerv3.Listener{
		Name: name,
		FilterChains: []*listenerv3.FilterChain{{
			Name:            name + "/" + cert,
			Filters:         []*listenerv3.Filter{hcmFilter(t, route)},
			TransportSocket: downstreamTLS(t, cert, trust),
		}},
	}
	if defaultCert != "" {
		ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(defaultCert)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sds(defaultTrust),
			},
		}}
		l.DefaultFilterChain = &listenerv3.FilterChain{
			Filters: []*listenerv3.Filter{hcmFilter(t, route)},
			TransportSocket: &corev3.TransportSocket{
				Name:       "envoy.transport_sockets.tls",
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, ctx)},
			},
		}
	}
	return l
}

func routeConfig(name, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
			}},
		}},
	}
}

// edsCluster is an EDS cluster; serviceName "" means the cluster's own name.
// A non-empty clientCert adds an UpstreamTlsContext (mTLS to the backend).
func edsCluster(t *testing.T, name, serviceName, clientCert, trust string) *clusterv3.Cluster {
	t.Helper()
	c := &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(5 * time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: serviceName},
	}
	if clientCert != "" {
		u := &tlsv3.UpstreamTlsContext{Sni: "backend.test", CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(clientCert)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sds(trust),
			},
		}}
		c.TransportSocket = &corev3.TransportSocket{
			Name:       "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, u)},
		}
	}
	return c
}

func staticCluster(name string, port uint32) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(5 * time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment:       loadAssignment(name, port),
	}
}

func loadAssignment(name string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
				}}},
			}},
		}}}},
	}
}

func certSecret(name string, chainPEM, keyPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: chainPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}},
	}}}
}

func trustSecret(name string, caPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: caPEM}},
	}}}
}

// harness runs the client under test and records what it reports.
type harness struct {
	updates  *recorder[Resources]
	conn     *recorder[bool]
	attempts *recorder[int]
	cancel   context.CancelFunc
	done     chan error
}

// runClient starts Run with cfg's callbacks recorded. Its cleanup cancels
// Run, waits for it to return, and checks that no goroutine outlives it.
func runClient(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{
		updates:  newRecorder[Resources](),
		conn:     newRecorder[bool](),
		attempts: newRecorder[int](),
		done:     make(chan error, 1),
	}
	cfg.NodeID = testNode
	cfg.NodeCluster = "certplane-test"
	// The test servers are plaintext on loopback TCP; TLS tests set cfg.TLS.
	cfg.Insecure = true
	cfg.UserAgentVersion = "test-1.2.3"
	cfg.OnUpdate = h.updates.add
	cfg.OnConnState = h.conn.add
	if cfg.Backoff == nil {
		cfg.Backoff = func(n int) time.Duration {
			h.attempts.add(n)
			return 10 * time.Millisecond
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *harness) stop(t *testing.T) {
	t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
		h.done <- err // later stops see it too
	case <-time.After(waitFor):
		t.Fatalf("Run did not return within %s of cancel", waitFor)
	}
}

// checkNoLeaks fails when goroutines started during the test outlive it. It
// must be registered first, so its cleanup runs after every other one.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(waitFor)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines after the test, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
				return
			}
			<-tick.C
		}
	})
}

// hasVersions matches a view whose versions are exactly want.
func hasVersions(want map[string]string) func(Resources) bool {
	return func(r Resources) bool {
		for url, v := range want {
			if r.Versions[url] != v {
				return false
			}
		}
		return true
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
