package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/certplane/certplane/pki/pkitest"
)

// selfCluster points cluster name at addr over TLS without verification,
// as a backend misconfigured to the proxy's own listener would be.
func selfCluster(name, addr string) []*clusterv3.Cluster {
	r := backendSpec{name: name, endpoints: []string{addr}}.build()
	c := r[0].(*clusterv3.Cluster)
	c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}}),
	}}
	return []*clusterv3.Cluster{c}
}

// setEndpoints replaces the endpoints of cluster name in rs.
func (rs *resourceSet) setEndpoints(name string, addrs ...string) {
	for i, r := range rs.endpoints {
		if r.(*endpointv3.ClusterLoadAssignment).ClusterName == name {
			rs.endpoints[i] = backendSpec{name: name, endpoints: addrs}.build()[1]
		}
	}
}

// TestSelfLoopDetected: a backend pointing at the proxy's own listener
// costs one extra hop, then the loop route's 508; the looping request never
// reaches the listener a third time. Normal requests carry the Via token.
func TestSelfLoopDetected(t *testing.T) {
	b := startBackend(t, "backend")
	res := backendSpec{name: "app", endpoints: []string{b.addr()}}.build()
	// The self cluster first points at the backend: the listener must be
	// bound before its own address is known.
	self := selfCluster("self", b.addr())
	res = append(res, self[0], backendSpec{name: "self", endpoints: []string{b.addr()}}.build()[1])
	e := newEdgeEnvWith(t, listenerSpec{routes: [][2]string{{"/loop", "self"}, {"/", "app"}}, edge: &edgeOptions{}}, nil, res...)
	self = selfCluster("self", e.base[len("https://"):])
	for i, c := range e.rs.clusters {
		if c.(*clusterv3.Cluster).Name == "self" {
			e.rs.clusters[i] = self[0]
		}
	}
	e.rs.setEndpoints("self", e.base[len("https://"):])
	e.ads.set(e.rs)
	waitFor(t, "self cluster pointing at the listener", func() bool {
		for _, c := range e.px.Status().Clusters {
			if c.Name == "self" && len(c.Hosts) == 1 && c.Hosts[0].Address == e.base[len("https://"):] {
				return c.Hosts[0].Healthy
			}
		}
		return false
	})

	code, body, err := get(e.cl, e.base+"/loop")
	if err != nil || code != http.StatusLoopDetected || body != edgeLoopBody {
		t.Fatalf("looping request: %d %q %v; want 508 %q", code, body, err, edgeLoopBody)
	}
	hops := e.px.log.find(map[string]string{"msg": "request", "path": "/loop"})
	if len(hops) != 2 {
		t.Fatalf("the looping request reached the listener %d times, want 2 (one extra hop): %v", len(hops), hops)
	}

	before := backendHits(b)
	if code, body, err := get(e.cl, e.base+"/"); err != nil || code != 200 || body != "backend" {
		t.Fatalf("normal request: %d %q %v", code, body, err)
	}
	if got := b.lastHeader().Values("Via"); len(got) != 1 || got[0] != "1.1 "+edgeToken {
		t.Errorf("backend saw Via %q, want [\"1.1 %s\"]", got, edgeToken)
	}
	// A request that already passed this proxy (another value first, as
	// a chain of proxies writes it) is refused before any backend.
	for _, via := range [][]string{{"1.1 " + edgeToken}, {"1.0 cache", "1.1 " + edgeToken}} {
		req, _ := http.NewRequest("GET", e.base+"/", nil)
		req.Header["Via"] = via
		resp, err := e.cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusLoopDetected {
			t.Errorf("request with Via %q: %d, want 508", via, resp.StatusCode)
		}
	}
	if hits := backendHits(b); hits != before+1 {
		t.Errorf("backend hit %d times, want once (the normal request)", hits-before)
	}
}

// TestHTTP2EdgeSettings: an HTTP/2 client sees the connection manager's
// http2_protocol_options in the server's SETTINGS: 100 concurrent streams,
// a 64 KiB stream window, a 1 MiB connection window (Envoy's edge values),
// and a 16 KiB maximum frame size.
func TestHTTP2EdgeSettings(t *testing.T) {
	b := startBackend(t, "backend")
	e := newEdgeEnvWith(t, listenerSpec{routes: [][2]string{{"/", "app"}}, edge: &edgeOptions{}}, nil, backendSpec{name: "app", endpoints: []string{b.addr()}}.build()...)
	c, err := tls.Dial("tcp", e.base[len("https://"):], &tls.Config{RootCAs: pool(e.serverCA.Cert), ServerName: "proxy.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q, want h2", p)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := map[http2.SettingID]uint32{}
	var connWindow uint32 = 65535
	for settings := false; !settings || connWindow == 65535; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's first frames: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				settings = true
				_ = f.ForeachSetting(func(s http2.Setting) error { got[s.ID] = s.Val; return nil })
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				connWindow += f.Increment
			}
		}
	}
	want := map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: 100,
		http2.SettingInitialWindowSize:    65536,
		http2.SettingMaxFrameSize:         16384,
	}
	for id, v := range want {
		if got[id] != v {
			t.Errorf("SETTINGS %v = %d, want %d (all: %v)", id, got[id], v, got)
		}
	}
	if connWindow != 1<<20 {
		t.Errorf("connection window %d, want %d", connWindow, 1<<20)
	}
}

// pathBackend records the request URI of every request.
type pathBackend struct {
	*httptest.Server
	mu   sync.Mutex
	uris []string
}

func startPathBackend(t *testing.T, name string) *pathBackend {
	pb := &pathBackend{}
	pb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pb.mu.Lock()
		pb.uris = append(pb.uris, r.RequestURI)
		pb.mu.Unlock()
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(pb.Close)
	return pb
}

func (pb *pathBackend) last() string {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if len(pb.uris) == 0 {
		return ""
	}
	return pb.uris[len(pb.uris)-1]
}

// TestPathNormalizedBeforeRouting: dot segments (plain and percent-encoded),
// doubled slashes and unreserved escapes are normalized as Envoy's
// normalize_path and merge_slashes do before the route is chosen, and the
// backend gets the normalized path; an escaped slash gets the contract's
// path_with_escaped_slashes_action, REJECT_REQUEST (400).
func TestPathNormalizedBeforeRouting(t *testing.T) {
	admin, app := startPathBackend(t, "admin"), startPathBackend(t, "app")
	res := backendSpec{name: "admin", endpoints: []string{strings.TrimPrefix(admin.URL, "http://")}}.build()
	res = append(res, backendSpec{name: "app", endpoints: []string{strings.TrimPrefix(app.URL, "http://")}}.build()...)
	e := newEdgeEnvWith(t, listenerSpec{routes: [][2]string{{"/admin", "admin"}, {"/", "app"}}, edge: &edgeOptions{}}, nil, res...)
	waitHosts(t, e.px.Proxy, "admin", 1)
	waitHosts(t, e.px.Proxy, "app", 1)
	cl := httpsClient(e.serverCA.Cert, nil, true)
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, c := range []struct {
		path, backend, uri string
		code               int
		location           string
	}{
		{"/a/../admin", "admin", "/admin", 200, ""},
		{"//admin", "admin", "/admin", 200, ""},
		{"/%2e%2e/admin", "admin", "/admin", 200, ""},
		{"/x/%2E%2e/admin/./y?q=/../z", "admin", "/admin/y?q=/../z", 200, ""},
		{"/%61dmin", "admin", "/admin", 200, ""},
		{"/app//x/", "app", "/app/x/", 200, ""},
		{"/adm%69n/%7e%2d", "admin", "/admin/~-", 200, ""},
		{"/a%2F..%2Fadmin", "", "", http.StatusBadRequest, ""},
		{"/a%5c..%5cadmin", "", "", http.StatusBadRequest, ""},
		{"/admin?next=%2F..%2F", "admin", "/admin?next=%2F..%2F", 200, ""},
	} {
		u := e.base + c.path
		req, _ := http.NewRequest("GET", u, nil)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || (c.backend != "" && string(body) != c.backend) {
			t.Errorf("%s: %d %q, want %d from %q", c.path, resp.StatusCode, body, c.code, c.backend)
			continue
		}
		if c.location != "" && resp.Header.Get("Location") != c.location {
			t.Errorf("%s: Location %q, want %q", c.path, resp.Header.Get("Location"), c.location)
		}
		pb := map[string]*pathBackend{"admin": admin, "app": app}[c.backend]
		if pb != nil && pb.last() != c.uri {
			t.Errorf("%s: backend %s got %q, want %q", c.path, c.backend, pb.last(), c.uri)
		}
	}
}

// startEchoBackend answers with the request body as it reads it.
func startEchoBackend(t *testing.T) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		_, _ = io.Copy(w, r.Body)
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// TestBufferLimitsStreamLargeBodies: with per_connection_buffer_limit_bytes
// 32 KiB on the listener and the cluster, a 4 MiB body streams through both
// ways intact over HTTP/1.1 and HTTP/2.
func TestBufferLimitsStreamLargeBodies(t *testing.T) {
	res := backendSpec{name: "echo", endpoints: []string{startEchoBackend(t)}}.build()
	res[0].(*clusterv3.Cluster).PerConnectionBufferLimitBytes = wrapperspb.UInt32(32768)
	e := newEdgeEnvWith(t, listenerSpec{routes: [][2]string{{"/", "echo"}}, edge: &edgeOptions{}}, nil, res...)
	waitHosts(t, e.px.Proxy, "echo", 1)
	payload := make([]byte, 4<<20)
	_, _ = rand.Read(payload)
	for _, h2 := range []bool{false, true} {
		cl := httpsClient(e.serverCA.Cert, nil, true)
		if !h2 {
			cl.Transport.(*http.Transport).ForceAttemptHTTP2 = false
			cl.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		resp, err := cl.Post(e.base+"/", "application/octet-stream", bytes.NewReader(payload))
		if err != nil {
			t.Fatalf("h2=%t: %v", h2, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, payload) {
			t.Fatalf("h2=%t: status %d, %d of %d bytes echoed intact (%v)", h2, resp.StatusCode, len(got), len(payload), err)
		}
		if (resp.ProtoMajor == 2) != h2 {
			t.Errorf("h2=%t: served over %s", h2, resp.Proto)
		}
	}
}

// recordingTLSBackend is an HTTPS backend requiring client certificates
// that records, per connection, the client certificate's subject and
// whether the connection was closed.
type recordingTLSBackend struct {
	*tlsBackend
	mu      sync.Mutex
	subject map[string]string // remote address -> client subject
	closed  map[string]bool
	release chan struct{} // /slow waits for it
	once    sync.Once
}

func (rb *recordingTLSBackend) releaseSlow() { rb.once.Do(func() { close(rb.release) }) }

func startRecordingTLSBackend(t *testing.T, b *tlsBackend) *recordingTLSBackend {
	rb := &recordingTLSBackend{tlsBackend: b, subject: map[string]string{}, closed: map[string]bool{}, release: make(chan struct{})}
	// Runs before the server's Close (cleanups run last first), which
	// would otherwise wait for a /slow request forever.
	t.Cleanup(rb.releaseSlow)
	inner := b.Config.Handler
	b.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rb.mu.Lock()
		rb.subject[r.RemoteAddr] = r.TLS.PeerCertificates[0].Subject.CommonName
		rb.mu.Unlock()
		if r.URL.Path == "/slow" {
			<-rb.release
		}
		inner.ServeHTTP(w, r)
	})
	b.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed || s == http.StateHijacked {
			rb.mu.Lock()
			rb.closed[c.RemoteAddr().String()] = true
			rb.mu.Unlock()
		}
	}
	return rb
}

// open lists the open connections that presented client subject cn.
func (rb *recordingTLSBackend) open(cn string) int {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	n := 0
	for addr, s := range rb.subject {
		if s == cn && !rb.closed[addr] {
			n++
		}
	}
	return n
}

// TestUpstreamClientCertRotationClosesOldConnections: after the cluster's
// client-certificate secret rotates, the next request presents the new
// certificate, the idle connection that presented the old one is closed at
// once (not after the upstream idle timeout), and a request in flight on
// an old connection finishes before that connection closes.
func TestUpstreamClientCertRotationClosesOldConnections(t *testing.T) {
	backendCA := pkitest.NewCA(t, "Backend CA")
	clientCA := pkitest.NewCA(t, "Proxy Client CA")
	rb := startRecordingTLSBackend(t, startTLSBackendUnstarted(t, backendCA.Server("backend.internal", pkitest.IPs("127.0.0.1")), clientCA))
	rb.StartTLS()
	res := backendSpec{name: "mtls", endpoints: []string{rb.addr()}}.build()
	res[0].(*clusterv3.Cluster).TransportSocket = upstreamTLSSocket("backend.internal", "trust/backends", "client/proxy")
	res = append(res, keyPairSecret("client/proxy", clientCA.Client("proxy-a")), trustSecret("trust/backends", backendCA.CertPEM(), nil))
	e := newEdgeEnv(t, [][2]string{{"/", "mtls"}}, nil, res...)
	waitHosts(t, e.px.Proxy, "mtls", 1)
	// One upstream connection stays busy with /slow, a second one is idle.
	slow := make(chan int, 1)
	go func() {
		code, _, _ := get(httpsClient(e.serverCA.Cert, nil, false), e.base+"/slow")
		slow <- code
	}()
	waitFor(t, "the slow request at the backend", func() bool { return rb.open("proxy-a") == 1 })
	if code, _, err := get(e.cl, e.base+"/"); err != nil || code != 200 {
		t.Fatalf("first request: %d %v", code, err)
	}
	waitFor(t, "two connections with the old certificate", func() bool { return rb.open("proxy-a") == 2 })

	for i, s := range e.rs.secrets {
		if s.(*tlsv3.Secret).Name == "client/proxy" {
			e.rs.secrets[i] = keyPairSecret("client/proxy", clientCA.Client("proxy-b"))
		}
	}
	e.ads.set(e.rs)
	waitUpdated(t, e.px.Proxy, "the rotated secret applied", func() bool {
		s := e.px.state.Load().secrets["client/proxy"]
		return s != nil && s.keyPair.Leaf.Subject.CommonName == "proxy-b"
	})
	if code, _, err := get(e.cl, e.base+"/"); err != nil || code != 200 {
		t.Fatalf("request after rotation: %d %v", code, err)
	}
	if rb.open("proxy-b") != 1 {
		t.Errorf("the request after rotation did not present the new certificate")
	}
	waitForWithin(t, 5*time.Second, "the idle connection with the old certificate closed", func() bool { return rb.open("proxy-a") == 1 })
	rb.releaseSlow()
	if code := <-slow; code != 200 {
		t.Fatalf("the request in flight during the rotation got %d, want 200", code)
	}
	waitForWithin(t, 5*time.Second, "the old connection closed after its request", func() bool { return rb.open("proxy-a") == 0 })
}

// waitForWithin is waitFor with its own deadline.
func waitForWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("not within %v: %s", d, what)
		case <-tick.C:
		}
	}
}
