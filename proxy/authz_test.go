package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	dto "github.com/prometheus/client_model/go"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/proxy/mtls"
)

// configEnv runs the whole pipeline a user runs: YAML and a certificate
// tree -> config.Load -> envoy.Translate -> ADS -> the proxy. What the
// proxy does here is what it does with the resources Envoy gets.
type configEnv struct {
	px       *runningProxy
	serverCA *pkitest.CA
	clientCA *pkitest.CA
	server   *pkitest.Leaf
	app      *backend
	model    *config.Model
}

func newConfigEnv(t *testing.T, yaml string) *configEnv {
	t.Helper()
	return newConfigEnvWith(t, yaml, pkitest.NewCA(t, "Partners CA"), config.Loader{})
}

// newConfigEnvWith is newConfigEnv with the trust store "partners" holding
// clientCA, and the config loaded by ld (ProxyOnly: as certplane proxy).
func newConfigEnvWith(t *testing.T, yaml string, clientCA *pkitest.CA, ld config.Loader) *configEnv {
	t.Helper()
	e := &configEnv{}
	e.serverCA = pkitest.NewCA(t, "Server Root CA")
	e.server = e.serverCA.Server("proxy.test", pkitest.URIs("spiffe://edge/proxy"))
	e.clientCA = clientCA
	e.app = startBackend(t, "app")
	tree := pkitest.NewTree(t)
	tree.Server("proxy", e.server)
	tree.Write("certs/trust/partners/ca.pem", e.clientCA.CertPEM(), 0o644)
	tree.Write("config/listeners.yaml", []byte(strings.ReplaceAll(yaml, "APP", e.app.addr())), 0o644)
	m, err := ld.Load(tree.Certs, tree.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Problems {
		t.Fatalf("config problem: %v", p)
	}
	e.model = m
	units, err := envoy.Translate(m)
	if err != nil {
		t.Fatal(err)
	}
	sets := make([]envoy.Set, 0, len(units))
	for _, l := range m.Listeners {
		sets = append(sets, units[l.Name])
	}
	all, err := envoy.Merge(sets...)
	if err != nil {
		t.Fatal(err)
	}
	rs := &resourceSet{}
	for _, typ := range envoy.Types {
		for _, r := range all.Sorted(typ) {
			if lis, ok := r.(*listenerv3.Listener); ok {
				// Config wants a real port; the test binds a free one.
				lis.GetAddress().GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 0}
			}
			rs.add(r)
		}
	}
	ads := startADS(t, "127.0.0.1:0")
	ads.set(rs)
	e.px = startProxy(t, ads.addr)
	return e
}

// do sends one request over a new connection presenting leaf (nil: none),
// with extra request headers.
func (e *configEnv) do(t *testing.T, listener string, leaf *pkitest.Leaf, path string, hdr http.Header) (int, string) {
	t.Helper()
	var cert *tls.Certificate
	if leaf != nil {
		c := leaf.TLS()
		cert = &c
	}
	req, err := http.NewRequest(http.MethodGet, "https://"+e.px.addr(t, listener)+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := httpsClient(e.serverCA.Cert, cert, false).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", listener, path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

func rawName(t *testing.T, n pkix.Name) []byte {
	t.Helper()
	der, err := asn1.Marshal(n.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func counterValue(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// The tricky subject of mtls/testdata/xfcc-client.pem (escaped comma, '+'
// and '#', a multi-valued RDN, non-ASCII), as Envoy prints it.
const trickySubject = `DC=acme,CN=\#alice \"the\" \<admin\>\; \C3\A9\ +UID=a1,OU=Pay\+Ops,O=Acme\, Inc.,C=US`

// TestRouteAllowByIdentity: each identity type admits exactly the
// certificates carrying that field, over real handshakes; everyone else
// gets 403 with Envoy's body and details, logged and counted, and the
// backend sees nothing.
func TestRouteAllowByIdentity(t *testing.T) {
	e := newConfigEnv(t, `
listeners:
  - name: partners
    address: 127.0.0.1:8443
    certificates: [proxy]
    client_auth: {mode: optional, trust_store: partners}
    routes:
      - path_prefix: /admin
        backend: app
        allow:
          - {type: uri, exact: "spiffe://partners/admin"}
          - {type: subject, contains: "OU=ops"}
      - {path_prefix: /dns, backend: app, allow: [{type: dns, suffix: ".ops.example"}]}
      - {path_prefix: /email, backend: app, allow: [{type: email, exact: "ops@partners.example"}]}
      - {path_prefix: /ip, backend: app, allow: [{type: ip, exact: "10.9.8.7"}]}
      - {path_prefix: /tricky, backend: app, allow: [{type: subject, exact: '`+trickySubject+`'}]}
      - {path_prefix: /re, backend: app, allow: [{type: uri, regex: "spiffe://partners/[a-z]+"}]}
      - {path_prefix: /, backend: app}
backends:
  - name: app
    endpoints: ["APP"]
`)
	pemBytes, err := os.ReadFile("mtls/testdata/xfcc-client.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	tricky, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := mtls.Subject(tricky); got != trickySubject {
		t.Fatalf("tricky subject %q, want %q", got, trickySubject)
	}
	ca := e.clientCA
	clients := map[string]*pkitest.Leaf{
		"admin":   ca.Client("admin", pkitest.URIs("spiffe://partners/admin")),
		"ops":     ca.Client("ops", pkitest.RawSubject(rawName(t, pkix.Name{CommonName: "carol", OrganizationalUnit: []string{"ops"}}))),
		"dns":     ca.Client("dns", pkitest.DNS("a.ops.example")),
		"email":   ca.Client("email", pkitest.Emails("ops@partners.example")),
		"ip":      ca.Client("ip", pkitest.IPs("10.9.8.7")),
		"tricky":  ca.Client("tricky", pkitest.RawSubject(tricky.RawSubject)),
		"reader":  ca.Client("reader", pkitest.URIs("spiffe://partners/reader", "spiffe://other/x")),
		"nearly":  ca.Client("nearly", pkitest.URIs("spiffe://partners/admin/x"), pkitest.DNS("ops.example"), pkitest.Emails("ops@partners.example.org"), pkitest.IPs("10.9.8.70")),
		"uri-ou":  ca.Client("uri-ou", pkitest.URIs("spiffe://x/OU=ops")), // a SAN never passes a subject rule
		"dns-ou":  ca.Client("dns-ou", pkitest.DNS("OU=ops.example")),
		"nothing": ca.Client("bob"),
		"none":    nil,
	}
	admitted := map[string][]string{
		"/admin":  {"admin", "ops"},
		"/dns":    {"dns"},
		"/email":  {"email"},
		"/ip":     {"ip"},
		"/tricky": {"tricky"},
		"/re":     {"admin", "reader"},
		"/":       {"admin", "ops", "dns", "email", "ip", "tricky", "reader", "nearly", "uri-ou", "dns-ou", "nothing", "none"},
	}
	for path, ok := range admitted {
		for name, leaf := range clients {
			want := 403
			for _, a := range ok {
				if a == name {
					want = 200
				}
			}
			e.app.mu.Lock()
			hits := e.app.hits
			e.app.mu.Unlock()
			code, body := e.do(t, "partners", leaf, path, nil)
			e.app.mu.Lock()
			reached := e.app.hits - hits
			e.app.mu.Unlock()
			if code != want {
				t.Errorf("%s as %s: %d %q, want %d", path, name, code, body, want)
				continue
			}
			if want == 403 && (body != "RBAC: access denied" || reached != 0) {
				t.Errorf("%s as %s: body %q, backend reached %d times; want Envoy's body and no upstream request", path, name, body, reached)
			}
		}
	}
	denied := e.px.log.find(map[string]string{"msg": "request", "path": "/admin", "status": "403", "detail": "rbac_access_denied_matched_policy[none]"})
	if want := len(clients) - 2; len(denied) != want {
		t.Errorf("%d request lines for /admin denials with Envoy's details, want %d", len(denied), want)
	}
	if got := counterValue(t, e.px.metrics.rbacDenied.WithLabelValues("partners", "/admin")); got != float64(len(clients)-2) {
		t.Errorf("rbac denied counter for /admin = %v, want %d", got, len(clients)-2)
	}
	if got := counterValue(t, e.px.metrics.rbacDenied.WithLabelValues("partners", "/")); got != 0 {
		t.Errorf("rbac denied counter for / = %v, want 0 (no allow list)", got)
	}
}

// TestListenerSubjects: client_auth.subjects guards every route (403, the
// loop route included); a route's allow list narrows it further and does
// not replace it.
func TestListenerSubjects(t *testing.T) {
	e := newConfigEnv(t, `
listeners:
  - name: partners
    address: 127.0.0.1:8443
    certificates: [proxy]
    client_auth:
      mode: verify
      trust_store: partners
      subjects: [{type: uri, prefix: "spiffe://partners/"}]
    routes:
      - {path_prefix: /admin, backend: app, allow: [{type: subject, contains: "CN=admin"}]}
      - {path_prefix: /, backend: app}
backends:
  - name: app
    endpoints: ["APP"]
`)
	ca := e.clientCA
	partner := ca.Client("someone", pkitest.URIs("spiffe://partners/someone"))
	partnerAdmin := ca.Client("admin", pkitest.URIs("spiffe://partners/admin"))
	outsideAdmin := ca.Client("admin", pkitest.URIs("spiffe://outside/admin"))
	for _, c := range []struct {
		leaf *pkitest.Leaf
		path string
		want int
	}{
		{partner, "/", 200},
		{partnerAdmin, "/", 200},
		{outsideAdmin, "/", 403},
		{partner, "/admin", 403},
		{partnerAdmin, "/admin", 200},
		{outsideAdmin, "/admin", 403}, // its subject matches, the listener's subjects do not
	} {
		if code, body := e.do(t, "partners", c.leaf, c.path, nil); code != c.want {
			t.Errorf("%s as %v: %d %q, want %d", c.path, mtls.URISANs(c.leaf.Cert), code, body, c.want)
		}
	}
	// A request carrying this listener's loop token meets the filter
	// before the router's 508, as in Envoy.
	token := envoy.LoopToken("partners", "")
	if code, _ := e.do(t, "partners", outsideAdmin, "/", http.Header{"Via": {"1.1 " + token}}); code != 403 {
		t.Errorf("looping request from an outsider: %d, want 403 before the loop route", code)
	}
	if code, _ := e.do(t, "partners", partner, "/", http.Header{"Via": {"1.1 " + token}}); code != 508 {
		t.Errorf("looping request from a partner: %d, want 508", code)
	}
}

// TestXFCCModes: a forged incoming XFCC is dropped by sanitize_set,
// kept with this hop appended by append_forward, forwarded unchanged by
// forward_only (and removed when the client sent no certificate), with
// the field set chosen, byte for byte in Envoy's format.
func TestXFCCModes(t *testing.T) {
	e := newConfigEnv(t, `
listeners:
  - name: sanitize
    address: 127.0.0.1:8443
    certificates: [proxy]
    client_auth: {mode: verify, trust_store: partners}
    routes: [{path_prefix: /, backend: app}]
  - name: append
    address: 127.0.0.1:8444
    certificates: [proxy]
    client_auth: {mode: verify, trust_store: partners, subject_alt_names: [{type: uri, prefix: "spiffe://edge/"}]}
    client_cert_headers: [{xfcc: {mode: append_forward, fields: [subject, hash, uri]}}]
    routes: [{path_prefix: /, backend: app}]
  - name: forward
    address: 127.0.0.1:8445
    certificates: [proxy]
    client_auth: {mode: optional, trust_store: partners}
    client_cert_headers: [{xfcc: {mode: forward_only}}]
    routes: [{path_prefix: /, backend: app}]
  - name: fields
    address: 127.0.0.1:8446
    certificates: [proxy]
    client_auth: {mode: verify, trust_store: partners}
    client_cert_headers: [{xfcc: {fields: [hash, dns, cert]}}]
    routes: [{path_prefix: /, backend: app}]
backends:
  - name: app
    endpoints: ["APP"]
`)
	if len(e.model.Warnings) != 1 || !strings.Contains(e.model.Warnings[0].Error(), `listener "forward"`) {
		t.Errorf("warnings %v, want one for listener forward (forward_only, clients not restricted)", e.model.Warnings)
	}
	edge := e.clientCA.Client("edge", pkitest.URIs("spiffe://edge/lb"), pkitest.DNS("lb.edge.example"))
	const forged = `By=spiffe://edge/proxy;Hash=00;Subject="CN=root";URI=spiffe://partners/admin`
	sum := sha256.Sum256(edge.Cert.Raw)
	hash := hex.EncodeToString(sum[:])
	pemURL := strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D").Replace(
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: edge.Cert.Raw})))
	for _, c := range []struct {
		listener string
		leaf     *pkitest.Leaf
		sent     []string
		want     []string // nil: no header
	}{
		{"sanitize", edge, []string{forged}, []string{mtls.XFCC(e.server.Cert, []*x509.Certificate{edge.Cert})}},
		{"append", edge, []string{forged}, []string{forged + `,By=spiffe://edge/proxy;Hash=` + hash + `;Subject="CN=edge";URI=spiffe://edge/lb`}},
		{"append", edge, []string{"a", "b"}, []string{`a,b,By=spiffe://edge/proxy;Hash=` + hash + `;Subject="CN=edge";URI=spiffe://edge/lb`}},
		{"append", edge, nil, []string{`By=spiffe://edge/proxy;Hash=` + hash + `;Subject="CN=edge";URI=spiffe://edge/lb`}},
		{"forward", edge, []string{forged}, []string{forged}},
		{"forward", edge, nil, nil},
		{"forward", nil, []string{forged}, nil}, // no certificate: removed (FORWARD_ONLY is not ALWAYS_FORWARD_ONLY)
		{"fields", edge, []string{forged}, []string{`By=spiffe://edge/proxy;Hash=` + hash + `;Cert="` + pemURL + `";DNS=lb.edge.example`}},
	} {
		hdr := http.Header{}
		if c.sent != nil {
			hdr["X-Forwarded-Client-Cert"] = c.sent
		}
		if code, body := e.do(t, c.listener, c.leaf, "/", hdr); code != 200 {
			t.Fatalf("%s: %d %q", c.listener, code, body)
		}
		if got := e.app.lastHeader()["X-Forwarded-Client-Cert"]; fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s, sent %q: backend got XFCC %q\nwant %q", c.listener, c.sent, got, c.want)
		}
	}
}
