package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/pki/pkitest"
)

// sharedYAML is issue 13's example as written there; the placeholder port 1
// is rebound to a free one (sharedEnv), and BACKEND_* are the test's
// backends.
const sharedYAML = `listeners:
  - name: partners
    address: 127.0.0.1:1
    server_names: [partners.example.com, "*.partners.example.com"]   # exact or one-label wildcard
    certificates: [partners]
    client_auth: {mode: MODE, trust_store: partners}
    routes: [{path_prefix: /, backend: app}]
  - name: public                      # no server_names: the default for other or absent SNI
    address: 127.0.0.1:1
    certificates: [www]
    client_auth: {mode: off}
    routes: [{path_prefix: /, backend: site}]
backends:
  - {name: app, endpoints: ["BACKEND_APP"]}
  - {name: site, endpoints: ["BACKEND_SITE"]}
`

// sharedListener is the Listener certplane builds for the address.
const sharedListener = "shared/127.0.0.1:1"

type sharedEnv struct {
	serverCA  *x509.Certificate
	partner   tls.Certificate // a client certificate of the partners' CA
	app, site *backend
	px        *runningProxy
	addr      string
}

// newSharedEnv builds the resources of sharedYAML (partners in mode) with
// the real config loader and envoy builders, serves them over ADS, and
// starts a proxy on them.
func newSharedEnv(t *testing.T, mode string) *sharedEnv {
	t.Helper()
	return newSNIEnv(t, strings.ReplaceAll(sharedYAML, "MODE", mode), sharedListener)
}

// newSNIEnv serves yaml (with sharedYAML's certificates and backends) and
// waits for Listener listener.
func newSNIEnv(t *testing.T, yaml, listener string) *sharedEnv {
	t.Helper()
	e := &sharedEnv{}
	tr := pkitest.NewTree(t)
	srvCA := pkitest.NewCA(t, "Edge CA")
	e.serverCA = srvCA.Cert
	tr.Server("partners", srvCA.Server("partners.example.com", pkitest.DNS("partners.example.com", "*.partners.example.com")))
	tr.Server("www", srvCA.Server("www.example.com", pkitest.DNS("www.example.com")))
	partnersCA := pkitest.NewCA(t, "Partners CA")
	tr.Trust("partners", "ca.pem", partnersCA.CertPEM())
	e.partner = partnersCA.Client("acme").TLS()
	e.app, e.site = startBackend(t, "app"), startBackend(t, "site")
	tr.WriteConfig("edge.yaml", strings.NewReplacer("BACKEND_APP", e.app.addr(), "BACKEND_SITE", e.site.addr()).Replace(yaml))
	m, err := config.Load(tr.Certs, tr.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Problems {
		t.Fatalf("problem: %v", p)
	}
	units, err := envoy.Translate(m)
	if err != nil {
		t.Fatal(err)
	}
	var sets []envoy.Set
	for _, s := range units {
		sets = append(sets, s)
	}
	all, err := envoy.Merge(sets...)
	if err != nil {
		t.Fatal(err)
	}
	rs := &resourceSet{}
	for _, typ := range envoy.Types {
		for _, r := range all.Sorted(typ) {
			if l, ok := r.(*listenerv3.Listener); ok {
				l = proto.Clone(l).(*listenerv3.Listener)
				l.GetAddress().GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 0} // a free port
				r = l
			}
			rs.add(r)
		}
	}
	if n := len(rs.listeners); n != 1 {
		t.Fatalf("%d listeners built for one address", n)
	}

	ads := startADS(t, "127.0.0.1:0")
	ads.set(rs)
	e.px = startProxy(t, ads.addr)
	waitUpdated(t, e.px.Proxy, "listener "+listener+" to serve or a NACK", func() bool {
		return e.px.ListenerAddr(listener) != nil || len(ads.nackList()) > 0
	})
	if nacks := ads.nackList(); len(nacks) > 0 {
		t.Fatalf("proxy NACKed certplane's resources: %q", nacks)
	}
	e.addr = e.px.addr(t, listener)
	waitHosts(t, e.px.Proxy, "app", 1)
	if strings.Contains(yaml, "backend: site") {
		waitHosts(t, e.px.Proxy, "site", 1)
	}
	if nacks := ads.nackList(); len(nacks) > 0 {
		t.Fatalf("proxy NACKed certplane's resources: %q", nacks)
	}
	return e
}

// clientTLS sends sni (none when empty), checks the server's chain against
// the edge CA and records the leaf's names, and presents cert (nil: none)
// when asked; asked reports whether it was.
type clientTLS struct {
	sni    string
	cert   *tls.Certificate
	h2     bool
	maxVer uint16
	cache  tls.ClientSessionCache

	mu     sync.Mutex
	asked  bool
	served []string // DNS names of the server certificates seen
}

func (c *clientTLS) config(ca *x509.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	protos := []string{"http/1.1"}
	if c.h2 {
		protos = []string{"h2"}
	}
	return &tls.Config{
		ServerName: c.sni, MaxVersion: c.maxVer, NextProtos: protos, ClientSessionCache: c.cache,
		// The chain is checked below; the name is not, so that one client
		// can send any SNI (or none) and record which certificate came.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err != nil {
				return err
			}
			c.mu.Lock()
			c.served = append(c.served, strings.Join(cs.PeerCertificates[0].DNSNames, ","))
			c.mu.Unlock()
			return nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c.mu.Lock()
			c.asked = true
			c.mu.Unlock()
			if c.cert == nil {
				return &tls.Certificate{}, nil
			}
			return c.cert, nil
		},
	}
}

// do sends one request with Host host on a new connection to the proxy.
func (e *sharedEnv) do(t *testing.T, c *clientTLS, host string) (int, string, error) {
	t.Helper()
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", e.addr)
			if err != nil {
				return nil, err
			}
			conn := tls.Client(raw, c.config(e.serverCA))
			if err := conn.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return conn, nil
		},
		ForceAttemptHTTP2: c.h2,
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, "https://"+e.addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if c.h2 != (resp.ProtoMajor == 2) {
		t.Errorf("response over %s, want HTTP/2 %v", resp.Proto, c.h2)
	}
	return resp.StatusCode, string(body), err
}

func (b *backend) hitCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits
}

// Issue 13's listeners on one address: SNI chooses the listener, its
// certificate, client authentication and routes; a request naming another
// listener's host gets 421 and reaches no backend; on HTTP/1.1 and HTTP/2.
func TestSharedAddressSNI(t *testing.T) {
	e := newSharedEnv(t, "verify")
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			check := func(what string, c *clientTLS, host string, wantStatus int, wantBody, wantCert string) {
				t.Helper()
				app, site := e.app.hitCount(), e.site.hitCount()
				status, body, err := e.do(t, c, host)
				if wantStatus == 0 {
					if err == nil {
						t.Errorf("%s: got %d %q, want the handshake refused", what, status, body)
					}
				} else if err != nil || status != wantStatus || body != wantBody {
					t.Errorf("%s: got %d %q (%v), want %d %q", what, status, body, err, wantStatus, wantBody)
				}
				if wantStatus != http.StatusOK && (e.app.hitCount() != app || e.site.hitCount() != site) {
					t.Errorf("%s: a backend saw the request (app %d -> %d, site %d -> %d)", what, app, e.app.hitCount(), site, e.site.hitCount())
				}
				if wantCert != "" && (len(c.served) == 0 || !strings.Contains(c.served[0], wantCert)) {
					t.Errorf("%s: server certificate for %v, want %s", what, c.served, wantCert)
				}
			}
			partnersCert := "*.partners.example.com"
			misdirected := envoy.MisdirectedBody

			check("partners SNI without a certificate", &clientTLS{sni: "partners.example.com", h2: h2}, "partners.example.com", 0, "", partnersCert)
			check("partners SNI with a partner certificate", &clientTLS{sni: "partners.example.com", cert: &e.partner, h2: h2}, "partners.example.com", 200, "app", partnersCert)
			check("wildcard SNI without a certificate", &clientTLS{sni: "api.partners.example.com", h2: h2}, "api.partners.example.com", 0, "", partnersCert)
			check("wildcard SNI with a partner certificate", &clientTLS{sni: "API.Partners.example.com", cert: &e.partner, h2: h2}, "api.partners.example.com", 200, "app", partnersCert)
			// Within the chain chosen by SNI (mTLS done), a Host no listener
			// claims is routed by that listener's routes, as Envoy would.
			check("partners SNI, public Host", &clientTLS{sni: "partners.example.com", cert: &e.partner, h2: h2}, "www.example.com", 200, "app", partnersCert)

			public := &clientTLS{sni: "www.example.com", h2: h2}
			check("public SNI", public, "www.example.com", 200, "site", "www.example.com")
			if public.asked {
				t.Error("public SNI: a client certificate was requested")
			}
			check("unknown SNI takes the default", &clientTLS{sni: "other.example.net", h2: h2}, "other.example.net", 200, "site", "www.example.com")
			check("no SNI takes the default", &clientTLS{h2: h2}, "www.example.com", 200, "site", "www.example.com")

			// Domain fronting: the public (no mTLS) chain, a partners Host.
			for _, host := range []string{
				"partners.example.com", "PARTNERS.Example.COM", "partners.example.com.", "partners.example.com:443",
				"partners.example.com.:8443", "api.partners.example.com", "a.b.partners.example.com:443", "X.PARTNERS.EXAMPLE.COM.",
			} {
				check("public SNI, Host "+host, &clientTLS{sni: "www.example.com", h2: h2}, host, http.StatusMisdirectedRequest, misdirected, "www.example.com")
				check("no SNI, Host "+host, &clientTLS{h2: h2}, host, http.StatusMisdirectedRequest, misdirected, "www.example.com")
			}
			// Names that only look alike are the public listener's.
			for _, host := range []string{"evilpartners.example.com", "partners.example.com.evil.net", "partners.example.co"} {
				check("public SNI, Host "+host, &clientTLS{sni: "www.example.com", h2: h2}, host, 200, "site", "www.example.com")
			}
		})
	}
	// The request log names the config listener, as Envoy's HTTP access
	// log does (its "listener" is the connection manager's literal).
	for _, want := range []map[string]string{
		{"event": "request", "listener": "partners", "status": "200"},
		{"event": "request", "listener": "public", "status": "200"},
		{"event": "request", "listener": "public", "status": "421", "detail": "direct_response"},
	} {
		if len(e.px.log.find(want)) == 0 {
			t.Errorf("no request log line with %v", want)
		}
	}
}

// sessionCache hands the last session it stored to every Get, whatever the
// server name: a client that presents the ticket it got for one SNI with
// another.
type sessionCache struct {
	mu sync.Mutex
	cs *tls.ClientSessionState
}

func (c *sessionCache) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs, c.cs != nil
}

func (c *sessionCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs == nil {
		return
	}
	c.mu.Lock()
	c.cs = cs
	c.mu.Unlock()
}

// A session ticket got on the public listener never resumes on the partners
// listener of the same address: the handshake is full, and the client is
// asked for its certificate. In mode optional, Go itself would have
// resumed a certificate-less session: only per-chain ticket keys stop it.
func TestSharedAddressResumptionIsolation(t *testing.T) {
	for _, mode := range []string{"verify", "optional"} {
		t.Run(mode, func(t *testing.T) {
			e := newSharedEnv(t, mode)
			for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				t.Run(tls.VersionName(ver), func(t *testing.T) {
					cache := &sessionCache{}
					public := &clientTLS{sni: "www.example.com", maxVer: ver, cache: cache}
					if status, _, err := e.do(t, public, "www.example.com"); err != nil || status != 200 {
						t.Fatalf("public: %d %v", status, err)
					}
					// The ticket resumes on its own listener: the isolation
					// below is not resumption being off.
					again := &clientTLS{sni: "www.example.com", maxVer: ver, cache: cache}
					if !e.resumes(t, again) {
						t.Fatal("the public ticket does not resume on the public listener")
					}
					if cache.cs == nil {
						t.Fatal("no session ticket was issued")
					}
					partners := &clientTLS{sni: "partners.example.com", cert: &e.partner, maxVer: ver, cache: cache}
					if e.resumes(t, partners) {
						t.Fatal("the public listener's session resumed on the partners listener")
					}
					if !partners.asked {
						t.Error("partners: no client certificate was requested")
					}
				})
			}
		})
	}
}

// resumes handshakes once with c and reports whether the session resumed.
func (e *sharedEnv) resumes(t *testing.T, c *clientTLS) bool {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", e.addr, c.config(e.serverCA))
	if err != nil {
		var ae tls.AlertError
		if errors.As(err, &ae) {
			t.Fatalf("handshake refused: %v", err)
		}
		t.Fatal(err)
	}
	defer conn.Close()
	// Read the server's first flight after the handshake (TLS 1.3 tickets)
	// with one request, so the session cache holds what this connection
	// got.
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+c.sni+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.Copy(io.Discard, conn)
	return conn.ConnectionState().DidResume
}

// The same with curl, as the README shows it: public SNI with a partners
// Host is 421 on HTTP/1.1 and HTTP/2; the partners SNI without a client
// certificate is refused in the handshake.
func TestSharedAddressCurl(t *testing.T) {
	need(t, "curl")
	e := newSharedEnv(t, "verify")
	dir := writeFiles(t, map[string][]byte{"ca.crt": pemCert(e.serverCA)})
	_, port, _ := net.SplitHostPort(e.addr)
	curl := func(sni string, args ...string) (string, error) {
		base := []string{"-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", dir + "/ca.crt",
			"--resolve", sni + ":" + port + ":127.0.0.1", "https://" + sni + ":" + port + "/"}
		out, err := exec.Command("curl", append(base, args...)...).CombinedOutput()
		return string(out), err
	}
	for _, proto := range []string{"--http1.1", "--http2"} {
		if out, err := curl("www.example.com", proto); err != nil || out != "200" {
			t.Errorf("curl %s public: %q %v, want 200", proto, out, err)
		}
		if out, err := curl("www.example.com", proto, "-H", "Host: partners.example.com"); err != nil || out != "421" {
			t.Errorf("curl %s public SNI, partners Host: %q %v, want 421", proto, out, err)
		}
		if out, err := curl("partners.example.com", proto); err == nil {
			t.Errorf("curl %s partners without a certificate: %q, want the handshake refused", proto, out)
		}
	}
	if n := e.app.hitCount(); n != 0 {
		t.Errorf("app saw %d requests, want none", n)
	}
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// A listener alone on its address with server_names serves only those
// names: another or no SNI finds no filter chain, as in Envoy.
func TestServerNamesRestrictSingleListener(t *testing.T) {
	yaml := sharedYAML[:strings.Index(sharedYAML, "  - name: public")] + "backends:\n  - {name: app, endpoints: [\"BACKEND_APP\"]}\n"
	e := newSNIEnv(t, strings.ReplaceAll(yaml, "MODE", "verify"), "partners")
	if status, body, err := e.do(t, &clientTLS{sni: "x.partners.example.com", cert: &e.partner}, "x.partners.example.com"); err != nil || status != 200 || body != "app" {
		t.Errorf("partners wildcard SNI: %d %q %v, want 200 app", status, body, err)
	}
	for _, sni := range []string{"www.example.com", ""} {
		if status, _, err := e.do(t, &clientTLS{sni: sni, cert: &e.partner}, "partners.example.com"); err == nil {
			t.Errorf("SNI %q: %d, want the handshake refused", sni, status)
		}
	}
	if n := e.app.hitCount(); n != 1 {
		t.Errorf("app saw %d requests, want 1", n)
	}
}
