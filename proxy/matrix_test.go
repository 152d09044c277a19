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

	"github.com/certplane/certplane/proxy/proxytest"
)

func uriSAN(exact string) []*tlsv3.SubjectAltNameMatcher {
	return []*tlsv3.SubjectAltNameMatcher{{
		SanType: tlsv3.SubjectAltNameMatcher_URI,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: exact}},
	}}
}

// TestAttackMatrix runs real handshakes for each case of the shared attack
// matrix (proxytest) against its own listener (own trust store, CRLs and
// flags), all served by one proxy from one snapshot, and checks the verdict
// and the logged reason. cmd/certplane runs the same cases through a
// certplane config and a real control plane, embedded and remote.
func TestAttackMatrix(t *testing.T) {
	m, px, b := startMatrixProxy(t)
	for _, c := range m.Cases {
		t.Run(c.Name, func(t *testing.T) {
			var cert *tls.Certificate
			if c.Client != nil {
				tc := c.Client.TLS()
				cert = &tc
			}
			cl := httpsClient(m.ServerCA.Cert, cert, false)
			req, _ := http.NewRequest("GET", "https://"+px.addr(t, c.Name)+"/", nil)
			req.Header.Set(xfccHeader, "By=spoofed;Hash=0;Subject=\"CN=root\"")
			proxytest.AddForgedIdentity(req.Header)
			resp, err := cl.Do(req)
			if c.Reason == "" {
				if err != nil {
					t.Fatalf("refused (%v); want accepted. log: %v", err, px.log.find(map[string]string{"listener": c.Name, "result": "fail"}))
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d; want 200 from the backend", resp.StatusCode)
				}
				got := b.lastHeader().Get(xfccHeader)
				switch {
				case c.Client == nil && got != "":
					t.Errorf("XFCC %q forwarded without a client certificate", got)
				case c.Client != nil && c.Mode != "off" && !strings.Contains(got, "Hash="+certHash(c.Client.Cert)):
					t.Errorf("XFCC %q does not carry the client's hash", got)
				case strings.Contains(got, "spoofed"):
					t.Errorf("spoofed XFCC reached the backend: %q", got)
				}
				for _, leak := range proxytest.ForgedIdentityLeaks(b.lastHeader()) {
					t.Errorf("reached the backend: %s", leak)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("accepted; want refused with %s", c.Reason)
			}
			want := map[string]string{"msg": "handshake", "listener": c.Name, "result": "fail", keyTransportFailure: c.Reason}
			waitFor(t, "log reason "+c.Reason, func() bool { return len(px.log.find(want)) == 1 })
		})
	}
}

// startMatrixProxy serves every case of the attack matrix from one proxy,
// each on its own listener (own trust store, CRLs and flags), routing to
// one backend.
func startMatrixProxy(t *testing.T) (*proxytest.Matrix, *runningProxy, *backend) {
	t.Helper()
	m := proxytest.NewMatrix(t)
	b := startBackend(t, "backend")
	rs := &resourceSet{}
	rs.add(keyPairSecret("server/proxy", m.Server))
	rs.add(backendSpec{name: "app", endpoints: []string{b.addr()}}.build()...)
	for _, c := range m.Cases {
		l := listenerSpec{name: c.Name, certs: []string{"server/proxy"}, mode: c.Mode, leafOnly: c.LeafOnly, xfcc: true, routes: [][2]string{{"/", "app"}}}
		if c.SANURI != "" {
			l.sans = uriSAN(c.SANURI)
		}
		if c.CAs != nil {
			l.trust = "trust/" + c.Name
			rs.add(trustSecret(l.trust, c.CAs, c.CRLs))
		}
		rs.add(l.build()...)
	}
	a := startADS(t, "127.0.0.1:0")
	a.set(rs)
	px := startProxyClock(t, a.addr, m.Clock)
	waitHosts(t, px.Proxy, "app", 1)
	return m, px, b
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
