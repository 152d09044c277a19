package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
)

func uriSAN(exact string) []*tlsv3.SubjectAltNameMatcher {
	return []*tlsv3.SubjectAltNameMatcher{{
		SanType: tlsv3.SubjectAltNameMatcher_URI,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: exact}},
	}}
}

func cat(b ...[]byte) []byte {
	var out []byte
	for _, x := range b {
		out = append(out, x...)
	}
	return out
}

// TestAttackMatrix runs real handshakes for each case against its own
// listener (own trust store, CRLs and flags), all served by one proxy from
// one snapshot, and checks the verdict and the logged reason.
func TestAttackMatrix(t *testing.T) {
	serverCA := pkitest.NewCA(t, "Server Root CA")
	server := serverCA.Server("proxy.test")
	root := pkitest.NewCA(t, "Matrix Root")
	inter := root.Intermediate("Matrix Intermediate")
	notCA := root.Intermediate("Not A CA", pkitest.NotCA())
	revokedInter := root.Intermediate("Revoked Intermediate")
	alice := root.Client("alice", pkitest.URIs("spiffe://example.org/alice"))
	bob := root.Client("bob")
	viaInter := inter.Client("carol")
	viaNotCA := notCA.Client("dave") // issued by a CA:FALSE "intermediate"
	viaRevoked := revokedInter.Client("erin")
	wrongEKU := root.Client("frank", pkitest.EKU(x509.ExtKeyUsageServerAuth))
	expired := root.Client("old", pkitest.Expired())
	future := root.Client("future", pkitest.NotYetValid())
	mallory := root.Client("mallory")
	eve := pkitest.NewCA(t, "Other CA").Client("eve")
	impostor := root.Impostor().Client("imp")

	rootCRL := root.CRLPEM(pkitest.CRLRevoked(mallory))
	rootCRLRevInter := root.CRLPEM(pkitest.CRLRevoked(&pkitest.Leaf{Leaf: &pki.Leaf{Cert: revokedInter.Cert}}))
	interCRL := inter.CRLPEM()
	revInterCRL := revokedInter.CRLPEM()
	expiredCRL := root.CRLPEM(pkitest.CRLExpired())

	type store struct{ cas, crls []byte }
	cases := []struct {
		name   string
		mode   string
		trust  store
		sans   []*tlsv3.SubjectAltNameMatcher
		leaf   bool
		client *pkitest.Leaf // nil: no certificate
		reason string        // "" = accepted
	}{
		{"valid", "verify", store{root.CertPEM(), rootCRL}, nil, false, alice, ""},
		{"no-cert", "verify", store{root.CertPEM(), rootCRL}, nil, false, nil, "no_certificate"},
		{"other-ca", "verify", store{root.CertPEM(), rootCRL}, nil, false, eve, "unknown_ca"},
		{"impostor-ca", "verify", store{root.CertPEM(), nil}, nil, false, impostor, "unknown_ca"},
		{"expired", "verify", store{root.CertPEM(), rootCRL}, nil, false, expired, "expired"},
		{"not-yet-valid", "verify", store{root.CertPEM(), rootCRL}, nil, false, future, "not_yet_valid"},
		{"revoked", "verify", store{root.CertPEM(), rootCRL}, nil, false, mallory, "revoked"},
		{"wrong-eku", "verify", store{root.CertPEM(), nil}, nil, false, wrongEKU, "bad_key_usage"},
		{"ca-false-intermediate", "verify", store{root.CertPEM(), nil}, nil, false, viaNotCA, "unknown_ca"},
		{"intermediate-chain-full-crls", "verify", store{cat(root.CertPEM(), inter.CertPEM()), cat(rootCRL, interCRL)}, nil, false, viaInter, ""},
		{"intermediate-crl-missing-full-chain", "verify", store{cat(root.CertPEM(), inter.CertPEM()), interCRL}, nil, false, viaInter, "crl_missing"},
		{"intermediate-crl-missing-leaf-only", "verify", store{cat(root.CertPEM(), inter.CertPEM()), interCRL}, nil, true, viaInter, ""},
		{"root-crl-only-leaf-only", "verify", store{cat(root.CertPEM(), inter.CertPEM()), rootCRL}, nil, true, viaInter, "crl_missing"},
		{"revoked-intermediate", "verify", store{cat(root.CertPEM(), revokedInter.CertPEM()), cat(rootCRLRevInter, revInterCRL)}, nil, false, viaRevoked, "revoked"},
		{"revoked-intermediate-leaf-only", "verify", store{cat(root.CertPEM(), revokedInter.CertPEM()), cat(rootCRLRevInter, revInterCRL)}, nil, true, viaRevoked, ""},
		{"intermediate-as-anchor", "verify", store{inter.CertPEM(), nil}, nil, false, viaInter, ""},
		{"expired-crl", "verify", store{root.CertPEM(), expiredCRL}, nil, false, alice, "crl_expired"},
		{"san-allowed", "verify", store{root.CertPEM(), nil}, uriSAN("spiffe://example.org/alice"), false, alice, ""},
		{"san-miss", "verify", store{root.CertPEM(), nil}, uriSAN("spiffe://example.org/alice"), false, bob, "san_mismatch"},
		{"san-makes-cert-mandatory", "optional", store{root.CertPEM(), nil}, uriSAN("spiffe://example.org/alice"), false, nil, "no_certificate"},
		{"optional-no-cert", "optional", store{root.CertPEM(), rootCRL}, nil, false, nil, ""},
		{"optional-valid", "optional", store{root.CertPEM(), rootCRL}, nil, false, alice, ""},
		{"optional-untrusted", "optional", store{root.CertPEM(), rootCRL}, nil, false, eve, "unknown_ca"},
		{"optional-revoked", "optional", store{root.CertPEM(), rootCRL}, nil, false, mallory, "revoked"},
		{"passthrough-untrusted", "passthrough", store{}, nil, false, eve, ""},
		{"passthrough-no-cert", "passthrough", store{}, nil, false, nil, ""},
		{"off", "off", store{}, nil, false, alice, ""},
	}
	b := startBackend(t, "backend")
	rs := &resourceSet{}
	rs.add(keyPairSecret("server/proxy", server))
	rs.add(backendSpec{name: "app", endpoints: []string{b.addr()}}.build()...)
	for _, c := range cases {
		l := listenerSpec{name: c.name, certs: []string{"server/proxy"}, mode: c.mode, sans: c.sans, leafOnly: c.leaf, xfcc: true, routes: [][2]string{{"/", "app"}}}
		if c.trust.cas != nil {
			l.trust = "trust/" + c.name
			rs.add(trustSecret(l.trust, c.trust.cas, c.trust.crls))
		}
		rs.add(l.build()...)
	}
	a := startADS(t, "127.0.0.1:0")
	a.set(rs)
	px := startProxy(t, a.addr)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cert *tls.Certificate
			if c.client != nil {
				tc := c.client.TLS()
				cert = &tc
			}
			cl := httpsClient(serverCA.Cert, cert, false)
			req, _ := http.NewRequest("GET", "https://"+px.addr(t, c.name)+"/", nil)
			req.Header.Set(xfccHeader, "By=spoofed;Hash=0;Subject=\"CN=root\"")
			resp, err := cl.Do(req)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused (%v); want accepted. log: %v", err, px.log.find(map[string]string{"listener": c.name, "result": "fail"}))
				}
				resp.Body.Close()
				got := b.lastHeader().Get(xfccHeader)
				switch {
				case c.client == nil && got != "":
					t.Errorf("XFCC %q forwarded without a client certificate", got)
				case c.client != nil && c.mode != "off" && !strings.Contains(got, "Hash="+certHash(c.client.Cert)):
					t.Errorf("XFCC %q does not carry the client's hash", got)
				case strings.Contains(got, "spoofed"):
					t.Errorf("spoofed XFCC reached the backend: %q", got)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("accepted; want refused with %s", c.reason)
			}
			want := map[string]string{"msg": "handshake", "listener": c.name, "result": "fail", "reason": c.reason}
			waitFor(t, "log reason "+c.reason, func() bool { return len(px.log.find(want)) == 1 })
		})
	}
}

func certHash(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// TestXFCCSpoofStrippedAndExact sends forged identity headers and checks
// that the backend sees only the proxy's, byte for byte in Envoy's format.
func TestXFCCSpoofStrippedAndExact(t *testing.T) {
	e := newGuideEnv(t, nil)
	tc := e.alice.TLS()
	cl := httpsClient(e.serverCA.Cert, &tc, false)
	req, _ := http.NewRequest("GET", e.url("/"), nil)
	req.Header.Set(xfccHeader, `By=spiffe://evil;Hash=00;Subject="CN=admin"`)
	req.Header.Set("X-Amzn-Mtls-Clientcert-Subject", "CN=admin")
	req.Header.Set("X-Amzn-Mtls-Clientcert-Leaf", "forged")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := e.b1.lastHeader()
	if e.b2.lastHeader() != nil && (h == nil || e.b2.hits > e.b1.hits) {
		h = e.b2.lastHeader()
	}
	enc := strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D")
	pemOf := enc.Replace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.alice.Cert.Raw})))
	want := "Hash=" + certHash(e.alice.Cert) + `;Cert="` + pemOf + `";Chain="` + pemOf + `";Subject="CN=alice";URI=spiffe://example.org/alice;DNS=alice.example.org`
	if got := h.Values(xfccHeader); len(got) != 1 || got[0] != want {
		t.Errorf("XFCC = %q\nwant %q", got, want)
	}
	if got := h.Get("X-Amzn-Mtls-Clientcert-Subject"); got != "CN=alice" {
		t.Errorf("ALB subject header = %q, want CN=alice", got)
	}
	if got := h.Get("X-Amzn-Mtls-Clientcert-Leaf"); got == "forged" || !strings.HasPrefix(got, "-----BEGIN%20CERTIFICATE-----") {
		t.Errorf("ALB leaf header = %q, want the URL-encoded PEM", got)
	}
	if got := h.Get("X-Forwarded-For"); got != "203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the client's appended", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
}
