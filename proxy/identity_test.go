package proxy

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/proxy/proxytest"
)

// sendForged sends proxytest.ForgedIdentity.
func sendForged(t *testing.T, cl *http.Client, url string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	proxytest.AddForgedIdentity(req.Header)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestForgedIdentityHeadersNeverReachBackend: in every client-auth mode
// and with every client_cert_headers selection, a client's identity
// headers (underscore spellings included) never reach the backend; the
// backend sees exactly the proxy's own, and none at all when no
// certificate was presented (no "NotBefore=;NotAfter=" validity header).
// A listener that rejects underscores answers 400 and forwards nothing.
func TestForgedIdentityHeadersNeverReachBackend(t *testing.T) {
	serverCA := pkitest.NewCA(t, "Server Root CA")
	clientCA := pkitest.NewCA(t, "Client Root CA")
	alice := clientCA.Client("alice", pkitest.URIs("spiffe://example.org/alice"))
	eve := pkitest.NewCA(t, "Other CA").Client("eve")
	b := startBackend(t, "backend")
	rs := &resourceSet{}
	rs.add(keyPairSecret("server/proxy", serverCA.Server("proxy.test")), trustSecret("trust/clients", clientCA.CertPEM(), clientCA.CRLPEM()))
	rs.add(backendSpec{name: "app", endpoints: []string{b.addr()}}.build()...)
	type client struct {
		name string
		leaf *pkitest.Leaf
	}
	clients := map[string][]client{
		"off":         {{"no-cert", nil}},
		"optional":    {{"no-cert", nil}, {"alice", alice}},
		"passthrough": {{"no-cert", nil}, {"eve", eve}},
		"verify":      {{"alice", alice}},
	}
	headerSets := map[string][2]bool{"none": {}, "xfcc": {true, false}, "alb": {false, true}, "xfcc+alb": {true, true}}
	for mode := range clients {
		for hs, sel := range headerSets {
			l := listenerSpec{name: mode + "-" + hs, certs: []string{"server/proxy"}, mode: mode, xfcc: sel[0], alb: sel[1],
				routes: [][2]string{{"/", "app"}}, edge: &edgeOptions{}}
			if mode == "optional" || mode == "verify" {
				l.trust = "trust/clients"
			}
			rs.add(l.build()...)
		}
	}
	rs.add(listenerSpec{name: "reject", certs: []string{"server/proxy"}, mode: "off", routes: [][2]string{{"/", "app"}},
		edge: &edgeOptions{underscores: corev3.HttpProtocolOptions_REJECT_REQUEST}}.build()...)
	a := startADS(t, "127.0.0.1:0")
	a.set(rs)
	px := startProxy(t, a.addr)
	px.addrOrNACK(t, a, "reject")
	waitHosts(t, px.Proxy, "app", 1)

	for mode, cs := range clients {
		for hs, sel := range headerSets {
			for _, c := range cs {
				t.Run(fmt.Sprintf("%s/%s/%s", mode, hs, c.name), func(t *testing.T) {
					var cert *tls.Certificate
					if c.leaf != nil {
						tc := c.leaf.TLS()
						cert = &tc
					}
					url := "https://" + px.addrOrNACK(t, a, mode+"-"+hs) + "/"
					if code := sendForged(t, httpsClient(serverCA.Cert, cert, false), url); code != http.StatusOK {
						t.Fatalf("status %d, want 200 from the backend", code)
					}
					checkIdentity(t, b.lastHeader(), c.leaf, mode != "off" && sel[0], mode != "off" && sel[1])
				})
			}
		}
	}

	t.Run("reject", func(t *testing.T) {
		url := "https://" + px.addrOrNACK(t, a, "reject") + "/"
		cl := httpsClient(serverCA.Cert, nil, false)
		before := backendHits(b)
		if code := sendForged(t, cl, url); code != http.StatusBadRequest {
			t.Errorf("underscore headers on a REJECT_REQUEST listener: status %d, want 400", code)
		}
		if backendHits(b) != before {
			t.Error("a rejected request reached the backend")
		}
		if code, _, err := get(cl, url); err != nil || code != http.StatusOK {
			t.Errorf("plain request on the REJECT_REQUEST listener: %d %v, want 200", code, err)
		}
	})
}

// checkIdentity asserts that h carries no forged value and no underscore
// header, and exactly the identity headers the proxy sets for leaf.
func checkIdentity(t *testing.T, h http.Header, leaf *pkitest.Leaf, xfcc, alb bool) {
	t.Helper()
	for _, leak := range proxytest.ForgedIdentityLeaks(h) {
		t.Errorf("reached the backend: %s", leak)
	}
	gotXFCC := h.Values(xfccHeader)
	switch {
	case xfcc && leaf != nil:
		if len(gotXFCC) != 1 || !strings.HasPrefix(gotXFCC[0], "Hash="+certHash(leaf.Cert)+";") {
			t.Errorf("XFCC = %q, want exactly the proxy's value for %s", gotXFCC, leaf.Cert.Subject)
		}
	case len(gotXFCC) > 0:
		t.Errorf("XFCC %q sent without a client certificate or without xfcc selected", gotXFCC)
	}
	var amzn []string
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-amzn-mtls-clientcert") {
			amzn = append(amzn, k)
		}
	}
	if !alb || leaf == nil {
		if len(amzn) > 0 {
			t.Errorf("ALB identity headers %q sent (alb selected: %t, certificate presented: %t)", amzn, alb, leaf != nil)
		}
		return
	}
	if got, want := h.Get("X-Amzn-Mtls-Clientcert-Subject"), "CN="+leaf.Cert.Subject.CommonName; got != want {
		t.Errorf("ALB subject = %q, want %q", got, want)
	}
	if got := h.Get("X-Amzn-Mtls-Clientcert-Validity"); !strings.HasPrefix(got, "NotBefore=20") {
		t.Errorf("ALB validity = %q, want the certificate's dates", got)
	}
	if len(amzn) != 5 {
		t.Errorf("ALB identity headers %q, want exactly the five the proxy sets", amzn)
	}
}

func backendHits(b *backend) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits
}
