package proxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"
)

// BenchmarkMTLSHandshake is one new connection through a real proxy on
// loopback: a full mutual-TLS handshake (no session resumption) on the
// guide's verify listener with a CRL, then one request, as a fresh curl
// does. The handshake dominates; the request makes sure the server side
// (client certificate verification included) has finished.
func BenchmarkMTLSHandshake(b *testing.B) {
	e := newGuideEnv(b, nil)
	for _, v := range []struct {
		name string
		max  uint16
	}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}} {
		b.Run(v.name, func(b *testing.B) {
			tc := e.alice.TLS()
			cl := httpsClient(e.serverCA.Cert, &tc, false)
			tr := cl.Transport.(*http.Transport)
			tr.TLSClientConfig.MaxVersion = v.max
			tr.ForceAttemptHTTP2 = false
			url := e.url("/")
			b.ReportAllocs()
			for b.Loop() {
				resp, err := cl.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.TLS.DidResume || resp.TLS.Version != v.max {
					b.Fatalf("status %d, resumed %t, version %x", resp.StatusCode, resp.TLS.DidResume, resp.TLS.Version)
				}
			}
		})
	}
}
