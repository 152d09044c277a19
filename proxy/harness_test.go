package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/proxy/mtls"
	"github.com/certplane/certplane/xds/client"
)

const testNode = "proxy-test"

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// adsServer is a real go-control-plane snapshot cache and ADS server on
// loopback, as `certplane serve` runs one.
type adsServer struct {
	t     testing.TB
	cache cache.SnapshotCache
	addr  string
	g     *grpc.Server
	mu    sync.Mutex
	// nacks collects error_detail of every NACK received.
	nacks []string
}

func startADS(t testing.TB, addr string) *adsServer {
	t.Helper()
	a := &adsServer{t: t, cache: cache.NewSnapshotCache(true, cache.IDHash{}, nil)}
	a.serve(addr)
	t.Cleanup(a.stop)
	return a
}

func (a *adsServer) serve(addr string) {
	a.t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		a.t.Fatal(err)
	}
	a.addr = lis.Addr().String()
	cb := server.CallbackFuncs{StreamRequestFunc: func(_ int64, r *discoverygrpc.DiscoveryRequest) error {
		if r.GetErrorDetail() != nil {
			a.mu.Lock()
			a.nacks = append(a.nacks, r.GetErrorDetail().GetMessage())
			a.mu.Unlock()
		}
		return nil
	}}
	srv := server.NewServer(context.Background(), a.cache, cb)
	a.g = grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(a.g, srv)
	go func() { _ = a.g.Serve(lis) }()
}

func (a *adsServer) stop() { a.g.Stop() }

func (a *adsServer) nackList() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.nacks...)
}

// set publishes rs with one version per type (a hash of that type), as
// certplane does.
func (a *adsServer) set(rs *resourceSet) {
	a.t.Helper()
	snap := &cache.Snapshot{}
	for typ, items := range map[types.ResponseType][]types.Resource{
		types.Listener: rs.listeners, types.Route: rs.routes, types.Cluster: rs.clusters,
		types.Endpoint: rs.endpoints, types.Secret: rs.secrets,
	} {
		h := ""
		for _, r := range items {
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			h += digest(b)
		}
		snap.Resources[typ] = cache.NewResources(digest([]byte(h)), items)
	}
	if err := snap.Consistent(); err != nil {
		a.t.Fatalf("inconsistent snapshot: %v", err)
	}
	if err := a.cache.SetSnapshot(context.Background(), testNode, snap); err != nil {
		a.t.Fatal(err)
	}
}

// resourceSet is one snapshot's resources.
type resourceSet struct {
	listeners, routes, clusters, endpoints, secrets []types.Resource
}

func (rs *resourceSet) add(r ...types.Resource) *resourceSet {
	for _, x := range r {
		switch x.(type) {
		case *listenerv3.Listener:
			rs.listeners = append(rs.listeners, x)
		case *routev3.RouteConfiguration:
			rs.routes = append(rs.routes, x)
		case *clusterv3.Cluster:
			rs.clusters = append(rs.clusters, x)
		case *endpointv3.ClusterLoadAssignment:
			rs.endpoints = append(rs.endpoints, x)
		case *tlsv3.Secret:
			rs.secrets = append(rs.secrets, x)
		}
	}
	return rs
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// listenerSpec describes one listener the way a certplane config does.
type listenerSpec struct {
	name     string
	port     uint32 // 0: any
	certs    []string
	mode     string // off, optional, passthrough, verify
	trust    string // trust/<store>
	sans     []*tlsv3.SubjectAltNameMatcher
	leafOnly bool
	suppress bool
	xfcc     bool
	alb      bool
	routes   [][2]string // prefix, backend
	// certSANs gives, per cert secret, its DNS SANs (multi-cert listeners).
	certSANs map[string][]string
	// edge sets the choices of the issue #11 contract's fields
	// (contract_test.go), which every listener carries unless preEdge.
	edge *edgeOptions
	// preEdge builds the resources certplane emitted before issue #11.
	preEdge bool
}

// build makes the Listener and RouteConfiguration of docs/resources.md.
func (s listenerSpec) build() []types.Resource {
	chain := func(cert string) *listenerv3.FilterChain {
		dtc := &tlsv3.DownstreamTlsContext{
			RequireClientCertificate: wrapperspb.Bool(s.mode == "verify"),
			CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsParams: &tlsv3.TlsParameters{
					TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
					TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
					CipherSuites:              []string{"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
				},
				AlpnProtocols:                  []string{"h2", "http/1.1"},
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: cert, SdsConfig: ads()}},
			},
		}
		switch s.mode {
		case "passthrough":
			dtc.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustChainVerification: tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED,
			}}
		case "optional", "verify":
			def := &tlsv3.CertificateValidationContext{
				MatchTypedSubjectAltNames: s.sans,
				OnlyVerifyLeafCertCrl:     s.leafOnly,
				SuppressClientCaList:      s.suppress,
			}
			dtc.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         def,
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: s.trust, SdsConfig: ads()},
				},
			}
		}
		h := &hcmv3.HttpConnectionManager{
			StatPrefix: s.name,
			CodecType:  hcmv3.HttpConnectionManager_AUTO,
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
				RouteConfigName: s.name, ConfigSource: ads(),
			}},
			HttpFilters:               []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}},
			UseRemoteAddress:          wrapperspb.Bool(true),
			ForwardClientCertDetails:  hcmv3.HttpConnectionManager_SANITIZE,
			CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(300 * time.Second)},
			RequestHeadersTimeout:     durationpb.New(10 * time.Second),
			StreamIdleTimeout:         durationpb.New(300 * time.Second),
			MaxRequestHeadersKb:       wrapperspb.UInt32(60),
		}
		if s.xfcc {
			h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_SANITIZE_SET
			h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
				Subject: wrapperspb.Bool(true), Cert: true, Chain: true, Uri: true, Dns: true,
			}
		}
		return &listenerv3.FilterChain{
			Name:    s.name + "/" + strings.TrimPrefix(cert, "server/"),
			Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)}}},
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
				TypedConfig: mustAny(dtc),
			}},
		}
	}
	l := &listenerv3.Listener{
		Name: s.name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: s.port},
		}}},
	}
	for i, c := range s.certs {
		fc := chain(c)
		if len(s.certs) > 1 {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: s.certSANs[c]}
			if i == 0 {
				l.DefaultFilterChain = chain(c)
				l.DefaultFilterChain.Name += "/default"
			}
		}
		l.FilterChains = append(l.FilterChains, fc)
	}
	vh := &routev3.VirtualHost{Name: s.name, Domains: []string{"*"}}
	for _, r := range s.routes {
		vh.Routes = append(vh.Routes, &routev3.Route{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: r[0]}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: r[1]},
				Timeout:          durationpb.New(60 * time.Second),
			}},
		})
	}
	rc := &routev3.RouteConfiguration{Name: s.name, VirtualHosts: []*routev3.VirtualHost{vh}, RequestHeadersToRemove: albHeaders}
	if s.alb {
		for _, h := range [][2]string{
			{"x-amzn-mtls-clientcert-serial-number", "%DOWNSTREAM_PEER_SERIAL%"},
			{"x-amzn-mtls-clientcert-issuer", "%DOWNSTREAM_PEER_ISSUER%"},
			{"x-amzn-mtls-clientcert-subject", "%DOWNSTREAM_PEER_SUBJECT%"},
			{"x-amzn-mtls-clientcert-validity", "NotBefore=%DOWNSTREAM_PEER_CERT_V_START(%Y-%m-%dT%H:%M:%SZ)%;NotAfter=%DOWNSTREAM_PEER_CERT_V_END(%Y-%m-%dT%H:%M:%SZ)%"},
			{"x-amzn-mtls-clientcert-leaf", "%DOWNSTREAM_PEER_CERT%"},
		} {
			rc.RequestHeadersToAdd = append(rc.RequestHeadersToAdd, &corev3.HeaderValueOption{
				Header:         &corev3.HeaderValue{Key: h[0], Value: h[1]},
				AppendAction:   corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
				KeepEmptyValue: false,
			})
		}
	}
	if !s.preEdge {
		var o edgeOptions
		if s.edge != nil {
			o = *s.edge
		}
		o.verify = s.mode == "verify"
		edgeListener(l, rc, o)
	}
	return []types.Resource{l, rc}
}

var albHeaders = []string{
	"x-amzn-mtls-clientcert-serial-number", "x-amzn-mtls-clientcert-issuer", "x-amzn-mtls-clientcert-subject",
	"x-amzn-mtls-clientcert-validity", "x-amzn-mtls-clientcert-leaf",
}

// backendSpec describes one backend: an EDS cluster and its endpoints.
type backendSpec struct {
	name      string
	endpoints []string // host:port (IP literals)
	hcPath    string   // "" = no health checks
	trust     string   // upstream TLS trust secret
	cert      string   // upstream client cert secret
	sni       string
}

func (b backendSpec) build() []types.Resource {
	c := &clusterv3.Cluster{
		Name:                 b.name,
		ConnectTimeout:       durationpb.New(5 * time.Second),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
		CommonLbConfig:       &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}},
		OutlierDetection: &clusterv3.OutlierDetection{
			Consecutive_5Xx:      wrapperspb.UInt32(5),
			Interval:             durationpb.New(10 * time.Second),
			BaseEjectionTime:     durationpb.New(30 * time.Second),
			MaxEjectionPercent:   wrapperspb.UInt32(50),
			EnforcingSuccessRate: wrapperspb.UInt32(0),
		},
	}
	if b.hcPath != "" {
		c.HealthChecks = []*corev3.HealthCheck{{
			Timeout:            durationpb.New(time.Second),
			Interval:           durationpb.New(50 * time.Millisecond),
			NoTrafficInterval:  durationpb.New(50 * time.Millisecond),
			HealthyThreshold:   wrapperspb.UInt32(2),
			UnhealthyThreshold: wrapperspb.UInt32(2),
			HealthChecker: &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
				Path: b.hcPath,
			}},
		}}
	}
	if b.trust != "" {
		u := &tlsv3.UpstreamTlsContext{Sni: b.sni, CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: b.trust, SdsConfig: ads()},
			},
		}}
		if b.cert != "" {
			u.CommonTlsContext.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: b.cert, SdsConfig: ads()}}
		}
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(u)}}
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: b.name}
	loc := &endpointv3.LocalityLbEndpoints{}
	for _, e := range b.endpoints {
		host, port, _ := net.SplitHostPort(e)
		p, _ := strconv.Atoi(port)
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
			}}},
		}}})
	}
	cla.Endpoints = []*endpointv3.LocalityLbEndpoints{loc}
	return []types.Resource{c, cla}
}

func keyPairSecret(name string, l *pkitest.Leaf) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: l.CertPEM()}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: l.KeyPEM()}},
	}}}
}

func trustSecret(name string, cas []byte, crls []byte) *tlsv3.Secret {
	vc := &tlsv3.CertificateValidationContext{TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: cas}}}
	if len(crls) > 0 {
		vc.Crl = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: crls}}
	}
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: vc}}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines decodes the JSON log lines.
func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(s.b.String(), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// find returns the log lines whose fields match all of want.
func (s *syncBuffer) find(want map[string]string) []map[string]any {
	var out []map[string]any
	for _, l := range s.lines() {
		ok := true
		for k, v := range want {
			if fmt.Sprint(l[k]) != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// runningProxy is a proxy connected to an ADS server.
type runningProxy struct {
	*Proxy
	log    *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startProxy(t testing.TB, target string) *runningProxy {
	t.Helper()
	return startProxyClock(t, target, nil)
}

// startProxyClock starts a proxy whose verifiers use now as their clock
// (nil: the real time).
func startProxyClock(t testing.TB, target string, now func() time.Time) *runningProxy {
	t.Helper()
	buf := &syncBuffer{}
	rp := startProxyOptions(t, target, Options{
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		ConnLog:          slog.New(slog.NewJSONHandler(buf, nil)),
		DrainTimeout:     2 * time.Second,
		FailureLogWindow: -1,
		MTLS:             mtls.Options{Now: now},
	})
	rp.log = buf
	return rp
}

// startProxyOptions starts a proxy made with opts; its log is nil (the
// caller's opts say where the logs go).
func startProxyOptions(t testing.TB, target string, opts Options) *runningProxy {
	t.Helper()
	p := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	rp := &runningProxy{Proxy: p, cancel: cancel, done: make(chan error, 1)}
	go func() {
		rp.done <- p.Run(ctx, client.Config{
			Target: target, NodeID: testNode, NodeCluster: "test", Insecure: true,
			Backoff: func(int) time.Duration { return 20 * time.Millisecond },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-rp.done:
		case <-time.After(10 * time.Second):
			t.Error("proxy did not stop")
		}
	})
	return rp
}

// addr waits for the listener to serve and returns its address.
func (rp *runningProxy) addr(t testing.TB, listener string) string {
	t.Helper()
	var a net.Addr
	waitUpdated(t, rp.Proxy, "listener "+listener+" to serve", func() bool { a = rp.ListenerAddr(listener); return a != nil })
	return a.String()
}

// backend is a loopback HTTP server answering "backend N" and recording the
// last request's headers.
type backend struct {
	*httptest.Server
	name string
	mu   sync.Mutex
	last http.Header
	hits int
}

func startBackend(t testing.TB, name string) *backend {
	b := &backend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		b.mu.Lock()
		b.last = r.Header.Clone()
		b.hits++
		b.mu.Unlock()
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

func (b *backend) lastHeader() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// httpsClient trusts the server CA and presents cert (may be nil); every
// request opens a new connection, as a fresh curl does.
func httpsClient(serverCA *x509.Certificate, cert *tls.Certificate, keepAlive bool) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(serverCA)
	tc := &tls.Config{RootCAs: pool, ServerName: "proxy.test"}
	if cert != nil {
		// Always send the certificate, as curl does: Go's client would
		// otherwise withhold one that no advertised CA name matches.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: !keepAlive, ForceAttemptHTTP2: true}}
}

func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitUpdated waits until cond holds, checking it after every commit of
// p's state: for conditions that only a commit changes (listeners bound,
// resources applied, /status), so that no polling is needed.
func waitUpdated(t testing.TB, p *Proxy, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		updated := p.Updated() // before cond: a commit in between closes it
		if cond() {
			return
		}
		select {
		case <-updated:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
