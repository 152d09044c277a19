package proxy

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
)

// TestPeerHeadersCachedPerConnection: on one keep-alive connection every
// request carries the exact XFCC and ALB values (rendered once per
// connection), whichever backend it reaches.
func TestPeerHeadersCachedPerConnection(t *testing.T) {
	e := newGuideEnv(t, nil)
	tc := e.alice.TLS()
	cl := httpsClient(e.serverCA.Cert, &tc, true)
	enc := strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D")
	pemOf := enc.Replace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.alice.Cert.Raw})))
	wantXFCC := "Hash=" + certHash(e.alice.Cert) + `;Cert="` + pemOf + `";Chain="` + pemOf + `";Subject="CN=alice";URI=spiffe://example.org/alice;DNS=alice.example.org`
	reused := 0
	for i := range 4 {
		req, _ := http.NewRequest("GET", e.url("/"), nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) {
				if ci.Reused {
					reused++
				}
			},
		}))
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b := e.b1
		if string(body) == "backend 2" {
			b = e.b2
		}
		h := b.lastHeader()
		if got := h.Values(xfccHeader); len(got) != 1 || got[0] != wantXFCC {
			t.Errorf("request %d: XFCC = %q\nwant %q", i, got, wantXFCC)
		}
		if got := h.Get("X-Amzn-Mtls-Clientcert-Subject"); got != "CN=alice" {
			t.Errorf("request %d: ALB subject = %q", i, got)
		}
		if got := h.Get("X-Amzn-Mtls-Clientcert-Leaf"); got != pemOf {
			t.Errorf("request %d: ALB leaf = %q, want %q", i, got, pemOf)
		}
	}
	if reused != 3 {
		t.Errorf("%d of 3 requests reused the connection", reused)
	}
}
