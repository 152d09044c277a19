package proxy

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkKeepAliveRequest is one request through a real proxy on loopback
// on a persistent HTTP/1.1 mTLS connection: the guide's listener (verify,
// XFCC and ALB headers, a CRL) round-robining over two backends. The
// request log is written (JSON) as in production.
func BenchmarkKeepAliveRequest(b *testing.B) {
	e := newGuideEnv(b, nil)
	tc := e.alice.TLS()
	cl := httpsClient(e.serverCA.Cert, &tc, true)
	tr := cl.Transport.(*http.Transport)
	tr.ForceAttemptHTTP2 = false
	tr.MaxIdleConnsPerHost = 1
	url := e.url("/orders")
	do := func() {
		resp, err := cl.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
			b.Fatalf("status %d proto %s", resp.StatusCode, resp.Proto)
		}
	}
	do() // the handshake, outside the measurement
	b.ReportAllocs()
	for b.Loop() {
		do()
	}
	b.StopTimer()
	h := e.b1.lastHeader()
	if h.Get(xfccHeader) == "" {
		b.Fatalf("backend saw no %s: %v", xfccHeader, h)
	}
}
