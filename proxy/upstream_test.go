package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
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
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/certplane/certplane/pki/pkitest"
)

// upstreamTLSSocket is the UpstreamTlsContext of docs/resources.md: TLS 1.2
// to 1.3; with sni, the server certificate's DNS SANs must match it; the
// trust secret verifies the chain; cert, when set, is the client key pair.
func upstreamTLSSocket(sni, trust, cert string) *corev3.TransportSocket {
	ctc := &tlsv3.CommonTlsContext{TlsParams: &tlsv3.TlsParameters{
		TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
		TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
	}}
	sds := &tlsv3.SdsSecretConfig{Name: trust, SdsConfig: ads()}
	if sni != "" {
		ctc.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_DNS,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: sni}},
			}}},
			ValidationContextSdsSecretConfig: sds,
		}}
	} else {
		ctc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sds}
	}
	if cert != "" {
		ctc.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: cert, SdsConfig: ads()}}
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: ctc}),
	}}
}

// tlsBackend is an HTTPS backend that may require a client certificate
// from clientCA, and records the subject of the client certificate of the
// last request.
type tlsBackend struct {
	*httptest.Server
	mu      sync.Mutex
	subject string
}

func startTLSBackend(t *testing.T, cert *pkitest.Leaf, clientCA *pkitest.CA) *tlsBackend {
	t.Helper()
	b := startTLSBackendUnstarted(t, cert, clientCA)
	b.StartTLS()
	return b
}

// startTLSBackendUnstarted is startTLSBackend before StartTLS, for tests
// that wrap its handler.
func startTLSBackendUnstarted(t *testing.T, cert *pkitest.Leaf, clientCA *pkitest.CA) *tlsBackend {
	t.Helper()
	b := &tlsBackend{}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		if len(r.TLS.PeerCertificates) > 0 {
			b.subject = r.TLS.PeerCertificates[0].Subject.String()
		}
		b.mu.Unlock()
		_, _ = io.WriteString(w, "tls backend")
	}))
	b.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	b.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS()}, MinVersion: tls.VersionTLS12}
	if clientCA != nil {
		b.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		b.TLS.ClientCAs = pool(clientCA.Cert)
	}
	t.Cleanup(b.Close)
	return b
}

func (b *tlsBackend) addr() string { return strings.TrimPrefix(b.URL, "https://") }

func (b *tlsBackend) clientSubject() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subject
}

// edgeEnv is one proxy with listener "edge" (no client certificates) whose
// routes and clusters each test sets.
type edgeEnv struct {
	serverCA *pkitest.CA
	ads      *adsServer
	px       *runningProxy
	cl       *http.Client
	base     string
	rs       *resourceSet // what was published
}

func newEdgeEnv(t *testing.T, routes [][2]string, extra func(l *listenerv3.Listener), res ...types.Resource) *edgeEnv {
	t.Helper()
	return newEdgeEnvWith(t, listenerSpec{routes: routes}, extra, res...)
}

// newEdgeEnvWith is newEdgeEnv for a listener spec (name, certificate and
// mode are set here).
func newEdgeEnvWith(t *testing.T, spec listenerSpec, extra func(l *listenerv3.Listener), res ...types.Resource) *edgeEnv {
	t.Helper()
	e := &edgeEnv{serverCA: pkitest.NewCA(t, "Server Root CA")}
	rs := &resourceSet{}
	spec.name, spec.certs, spec.mode = "edge", []string{"server/proxy"}, "off"
	msgs := spec.build()
	if extra != nil {
		extra(msgs[0].(*listenerv3.Listener))
	}
	rs.add(msgs...)
	rs.add(keyPairSecret("server/proxy", e.serverCA.Server("proxy.test")))
	rs.add(res...)
	e.rs = rs
	e.ads = startADS(t, "127.0.0.1:0")
	e.ads.set(rs)
	e.px = startProxy(t, e.ads.addr)
	e.base = "https://" + e.px.addrOrNACK(t, e.ads, "edge")
	e.cl = httpsClient(e.serverCA.Cert, nil, true)
	return e
}

// TestUpstreamTLSAndMTLS: a cluster with an UpstreamTlsContext reaches an
// HTTPS backend that requires a client certificate, and the backend sees
// the proxy's client certificate. A backend whose certificate comes from an
// untrusted CA, one whose name does not match the SNI, and one that wants
// a client certificate the cluster does not have are refused with 503.
func TestUpstreamTLSAndMTLS(t *testing.T) {
	backendCA := pkitest.NewCA(t, "Backend CA")
	proxyClientCA := pkitest.NewCA(t, "Proxy Client CA")
	proxyClient := proxyClientCA.Client("certplane-proxy")
	good := startTLSBackend(t, backendCA.Server("backend.internal", pkitest.IPs("127.0.0.1")), proxyClientCA)
	rogue := startTLSBackend(t, pkitest.NewCA(t, "Rogue CA").Server("backend.internal", pkitest.IPs("127.0.0.1")), nil)
	misnamed := startTLSBackend(t, backendCA.Server("other.internal", pkitest.IPs("127.0.0.1")), nil)

	cluster := func(name, addr, sni, cert string) []types.Resource {
		r := backendSpec{name: name, endpoints: []string{addr}}.build()
		r[0].(*clusterv3.Cluster).TransportSocket = upstreamTLSSocket(sni, "trust/backends", cert)
		return r
	}
	var res []types.Resource
	res = append(res, cluster("mtls", good.addr(), "backend.internal", "client/proxy")...)
	res = append(res, cluster("mtls-nosni", good.addr(), "", "client/proxy")...)
	res = append(res, cluster("rogue", rogue.addr(), "backend.internal", "")...)
	res = append(res, cluster("misnamed", misnamed.addr(), "backend.internal", "")...)
	res = append(res, cluster("nocert", good.addr(), "backend.internal", "")...)
	res = append(res, keyPairSecret("client/proxy", proxyClient), trustSecret("trust/backends", backendCA.CertPEM(), nil))
	e := newEdgeEnv(t, [][2]string{{"/mtls", "mtls"}, {"/nosni", "mtls-nosni"}, {"/rogue", "rogue"}, {"/misnamed", "misnamed"}, {"/nocert", "nocert"}}, nil, res...)
	for _, c := range []string{"mtls", "mtls-nosni", "rogue", "misnamed", "nocert"} {
		waitHosts(t, e.px.Proxy, c, 1)
	}

	for _, path := range []string{"/mtls", "/nosni"} {
		code, body, err := get(e.cl, e.base+path)
		if err != nil || code != 200 || body != "tls backend" {
			t.Fatalf("%s: %d %q %v; want the TLS backend's 200", path, code, body, err)
		}
		if got := good.clientSubject(); got != "CN=certplane-proxy" {
			t.Errorf("%s: backend saw client certificate %q, want CN=certplane-proxy", path, got)
		}
	}
	// With TLS 1.3 the client's side of the handshake ends before the server
	// has judged its (absent) certificate: the refusal then reaches the proxy
	// either as the server's certificate_required alert or, when the server
	// closes first, as a closed or reset connection. Both are a 503 here.
	for _, c := range []struct{ path, err string }{
		{"/rogue", "certificate signed by unknown authority"},
		{"/misnamed", `matches none of the DNS names ["backend.internal"]`},
		{"/nocert", "certificate required|closed network connection|connection reset by peer|EOF|broken pipe"},
	} {
		code, body, err := get(e.cl, e.base+c.path)
		if err != nil || code != http.StatusServiceUnavailable || body != "upstream connect error or disconnect/reset before headers" {
			t.Errorf("%s: %d %q %v; want 503 upstream connect error", c.path, code, body, err)
			continue
		}
		lines := e.px.log.find(map[string]string{"msg": "request", "path": c.path, "status": "503"})
		if len(lines) != 1 || !containsAny(fmt.Sprint(lines[0]["upstream_error"]), strings.Split(c.err, "|")) {
			t.Errorf("%s: request log %v; want one 503 line whose upstream_error mentions %q", c.path, lines, c.err)
		}
	}
}

// TestStrictDNSCluster: a STRICT_DNS cluster (inline load_assignment with
// host names, V4_PREFERRED, as certplane emits for DNS endpoints) resolves
// localhost and balances round robin over its two endpoints.
func TestStrictDNSCluster(t *testing.T) {
	b1, b2 := startBackend(t, "backend 1"), startBackend(t, "backend 2")
	lbe := func(addr string) *endpointv3.LbEndpoint {
		_, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "localhost", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
			}}},
		}}}
	}
	c := &clusterv3.Cluster{
		Name:                 "dns",
		ConnectTimeout:       durationpb.New(5 * time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		DnsLookupFamily:      clusterv3.Cluster_V4_PREFERRED,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "dns", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{lbe(b1.addr()), lbe(b2.addr())},
		}}},
	}
	e := newEdgeEnv(t, [][2]string{{"/", "dns"}}, nil, c)
	waitHosts(t, e.px.Proxy, "dns", 2)
	var got []string
	for range 4 {
		code, body, err := get(e.cl, e.base+"/")
		if err != nil || code != 200 {
			t.Fatalf("request: %d %q %v", code, body, err)
		}
		got = append(got, body)
	}
	if got[0] == got[1] || got[0] != got[2] || got[1] != got[3] {
		t.Fatalf("answers %q do not alternate between the two localhost endpoints", got)
	}
	_, p1, _ := net.SplitHostPort(b1.addr())
	if n := len(e.px.log.find(map[string]string{"msg": "request", "upstream_host": "localhost:" + p1})); n != 2 {
		t.Errorf("request log has %d lines with upstream_host localhost:%s, want 2", n, p1)
	}
}

// TestOutlierEjection: with consecutive_5xx 5, a backend answering 500 is
// ejected after its fifth 500 in a row and every later request goes to the
// healthy one; /status shows it ejected.
func TestOutlierEjection(t *testing.T) {
	good := startBackend(t, "good")
	var mu sync.Mutex
	badHits := 0
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		badHits++
		mu.Unlock()
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	t.Cleanup(bad.Close)
	badAddr := strings.TrimPrefix(bad.URL, "http://")
	e := newEdgeEnv(t, [][2]string{{"/", "app"}}, nil, backendSpec{name: "app", endpoints: []string{good.addr(), badAddr}}.build()...)
	waitHosts(t, e.px.Proxy, "app", 2)
	codes := map[int]int{}
	for range 30 {
		code, _, err := get(e.cl, e.base+"/")
		if err != nil {
			t.Fatal(err)
		}
		codes[code]++
	}
	mu.Lock()
	hits := badHits
	mu.Unlock()
	if hits != 5 || codes[500] != 5 || codes[200] != 25 {
		t.Fatalf("failing backend got %d requests, client saw %v; want it ejected after exactly 5 (5x500, 25x200)", hits, codes)
	}
	ejected := false
	for _, c := range e.px.Status().Clusters {
		for _, h := range c.Hosts {
			if h.Address == badAddr {
				ejected = h.Ejected
			}
		}
	}
	if !ejected {
		t.Errorf("/status does not show %s ejected: %+v", badAddr, e.px.Status().Clusters)
	}
}

// withTimeouts sets the connection manager's request_headers_timeout and
// stream_idle_timeout on every chain.
func withTimeouts(headers, idle time.Duration) func(*listenerv3.Listener) {
	return func(l *listenerv3.Listener) {
		for _, fc := range l.FilterChains {
			var h hcmv3.HttpConnectionManager
			if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(&h); err != nil {
				panic(err)
			}
			h.RequestHeadersTimeout = durationpb.New(headers)
			h.StreamIdleTimeout = durationpb.New(idle)
			fc.Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&h)}
		}
	}
}

// dialEdge opens an HTTP/1.1 TLS connection to the edge listener.
func (e *edgeEnv) dialEdge(t *testing.T) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", strings.TrimPrefix(e.base, "https://"), &tls.Config{
		RootCAs: pool(e.serverCA.Cert), ServerName: "proxy.test", NextProtos: []string{"http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestSlowlorisHeadersClosed: a client that dribbles header lines forever
// is cut off by request_headers_timeout, while a normal request on the same
// listener is served.
func TestSlowlorisHeadersClosed(t *testing.T) {
	b := startBackend(t, "backend")
	const timeout = 400 * time.Millisecond
	e := newEdgeEnv(t, [][2]string{{"/", "app"}}, withTimeouts(timeout, 5*time.Second), backendSpec{name: "app", endpoints: []string{b.addr()}}.build()...)
	waitHosts(t, e.px.Proxy, "app", 1)
	if code, _, err := get(e.cl, e.base+"/"); err != nil || code != 200 {
		t.Fatalf("normal request: %d %v", code, err)
	}
	c := e.dialEdge(t)
	start := time.Now()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: proxy.test\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		closed <- err
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case err := <-closed:
			d := time.Since(start)
			if err == nil {
				t.Fatal("the proxy answered a request whose headers never ended")
			}
			// The proxy's clock starts when it has the connection, a little
			// before the dial returns here: allow that, and a busy machine.
			if d < timeout/2 || d > timeout+5*time.Second {
				t.Fatalf("slowloris connection closed after %v (%v); want about request_headers_timeout %v", d, err, timeout)
			}
			t.Logf("slowloris connection closed after %v, %d header lines sent", d, n)
			return
		case <-tick.C:
			if n >= 200 {
				t.Fatalf("connection still open after %v of dribbled headers", time.Since(start))
			}
			_, _ = fmt.Fprintf(c, "X-Slow-%d: 1\r\n", n)
		}
	}
}

// TestStreamIdleTimeoutSlowBody: a request whose body stalls is ended by
// stream_idle_timeout: the client gets Envoy's 408 and the connection
// closes; the backend is not left waiting.
func TestStreamIdleTimeoutSlowBody(t *testing.T) {
	got := make(chan error, 1)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
		_, _ = io.WriteString(w, "read it all")
	}))
	t.Cleanup(b.Close)
	const idle = 400 * time.Millisecond
	e := newEdgeEnv(t, [][2]string{{"/", "app"}}, withTimeouts(5*time.Second, idle), backendSpec{name: "app", endpoints: []string{strings.TrimPrefix(b.URL, "http://")}}.build()...)
	waitHosts(t, e.px.Proxy, "app", 1)
	c := e.dialEdge(t)
	start := time.Now()
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	d := time.Since(start)
	if err != nil {
		t.Fatalf("no response to a stalled body after %v: %v", d, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || string(body) != "stream timeout" {
		t.Fatalf("stalled body: %d %q after %v; want 408 \"stream timeout\"", resp.StatusCode, body, d)
	}
	if d < idle || d > idle+2*time.Second {
		t.Errorf("answered after %v; want about stream_idle_timeout %v", d, idle)
	}
	select {
	case err := <-got:
		if err == nil {
			t.Error("backend read a complete body")
		}
	case <-time.After(5 * time.Second):
		t.Error("backend still waiting for the body")
	}
	var nerr net.Error
	if _, err := c.Read(make([]byte, 1)); err == nil || (errors.As(err, &nerr) && nerr.Timeout()) {
		t.Errorf("connection still open after the stream timeout: %v", err)
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
