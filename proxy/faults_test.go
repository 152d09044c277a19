package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/certplane/certplane/pki/pkitest"
)

// TestUnsupportedFieldNACK: a field the proxy does not implement NACKs the
// resource with an error_detail naming it, and the last good version keeps
// serving.
func TestUnsupportedFieldNACK(t *testing.T) {
	e := newGuideEnv(t, nil)
	rs := e.resources(e.clientCA.CRLPEM())
	l := rs.listeners[0].(*listenerv3.Listener)
	l.TcpBacklogSize = wrapperspb.UInt32(128)
	e.ads.set(rs)
	want := `listener "public": tcp_backlog_size is set but not implemented by certplane proxy`
	waitFor(t, "NACK", func() bool {
		for _, n := range e.ads.nackList() {
			if n == want {
				return true
			}
		}
		return false
	})
	tc := e.alice.TLS()
	if code, _, err := get(httpsClient(e.serverCA.Cert, &tc, false), e.url("/")); err != nil || code != 200 {
		t.Fatalf("after NACK: %d %v; want the last good listener serving", code, err)
	}
}

func TestValidateNested(t *testing.T) {
	p := New(Options{})
	e := &guideEnv{listener: listenerSpec{name: "l", certs: []string{"server/x"}, mode: "off", xfcc: true, routes: [][2]string{{"/", "b"}}}}
	msgs := e.listener.build()
	l := msgs[0].(*listenerv3.Listener)
	if err := p.Validate("", []proto.Message{l}); err != nil {
		t.Fatalf("contract listener refused: %v", err)
	}
	l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.http_inspector"}}
	err := p.Validate("", []proto.Message{l})
	want := `listener "l": listener_filters[0]: "envoy.filters.listener.http_inspector" is not implemented by certplane proxy`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// TestRotationUnderLoad: while clients hammer the listener, the server
// certificate rotates and a CRL revokes one active client. Valid clients see
// no failed request; the revoked client's open connection is closed.
func TestRotationUnderLoad(t *testing.T) {
	e := newGuideEnv(t, nil)
	e.publish(t, e.clientCA.CRLPEM(pkitest.CRLRevoked())) // mallory still valid
	// Mallory opens a keep-alive connection and uses it.
	var mconn *tls.Conn
	waitFor(t, "mallory admitted", func() bool {
		mc := e.mallory.TLS()
		c, err := tls.Dial("tcp", e.addr, &tls.Config{RootCAs: pool(e.serverCA.Cert), ServerName: "proxy.test", NextProtos: []string{"http/1.1"},
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &mc, nil }})
		if err != nil {
			return false
		}
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n")); err != nil {
			c.Close()
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			c.Close()
			return false
		}
		resp.Body.Close()
		mconn = c
		return true
	})
	defer mconn.Close()

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, who := range []*pkitest.Leaf{e.alice, e.bob, e.alice, e.bob} {
		tc := who.TLS()
		cl := httpsClient(e.serverCA.Cert, &tc, i%2 == 0) // half reuse connections, half reconnect
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 5000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				code, _, err := get(cl, e.url("/"))
				if err != nil || code != 200 {
					failed.Add(1)
					if err == nil {
						err = errors.New(http.StatusText(code))
					}
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	t0 := time.Now()
	waitFor(t, "load running", func() bool { return ok.Load() > 20 })
	t.Logf("load running after %v", time.Since(t0))

	// Rotate the server certificate.
	e.server = e.serverCA.Server("proxy.test")
	e.publish(t, e.clientCA.CRLPEM(pkitest.CRLRevoked()))
	waitUpdated(t, e.px.Proxy, "new server certificate served", func() bool {
		c, err := tls.Dial("tcp", e.addr, &tls.Config{RootCAs: pool(e.serverCA.Cert), ServerName: "proxy.test"})
		if err != nil {
			return false
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(e.server.Cert.SerialNumber) == 0
	})
	t.Logf("rotated after %v", time.Since(t0))
	before := ok.Load()
	// Revoke mallory while her connection is open.
	e.publish(t, e.clientCA.CRLPEM(pkitest.CRLRevoked(e.mallory)))
	revokedAt := time.Now()
	_ = mconn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1)
	_, err := mconn.Read(buf)
	if err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("revoked client's connection still open: %v", err)
	}
	if d := time.Since(revokedAt); d > 2*time.Second {
		t.Errorf("revoked connection closed after %v; want within a second of the update", d)
	}
	waitFor(t, "recheck logged", func() bool {
		return len(e.px.log.find(map[string]string{"event": "recheck", keyTransportFailure: "revoked", "peer_subject": "CN=mallory"})) == 1
	})
	t.Logf("revoked after %v", time.Since(t0))
	waitFor(t, "load after the revocation", func() bool { return ok.Load() > before+20 })
	t.Logf("done after %v", time.Since(t0))
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests of valid clients failed; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	t.Logf("%d requests, 0 failed, across a server certificate rotation and a CRL update", ok.Load())
}

func pool(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

// TestFaults: a killed backend is removed by health checks while requests
// keep succeeding; a killed control plane leaves the proxy serving, and it
// reconnects when the control plane returns.
func TestFaults(t *testing.T) {
	e := newGuideEnv(t, nil)
	tc := e.alice.TLS()
	cl := httpsClient(e.serverCA.Cert, &tc, false)
	e.b2.Close()
	waitFor(t, "health checks to remove backend 2", func() bool { return e.healthy("app") == 1 })
	for i := 0; i < 10; i++ {
		code, body, err := get(cl, e.url("/"))
		if err != nil || code != 200 || body != "backend 1" {
			t.Fatalf("request %d with backend 2 down: %d %q %v", i, code, body, err)
		}
	}

	addr := e.ads.addr
	e.ads.stop()
	waitFor(t, "proxy to see the control plane gone", func() bool { return !e.px.Status().Connected })
	for i := 0; i < 5; i++ {
		if code, _, err := get(cl, e.url("/")); err != nil || code != 200 {
			t.Fatalf("request with control plane down: %d %v", code, err)
		}
	}
	e.ads.serve(addr)
	waitFor(t, "proxy to reconnect", func() bool { return e.px.Status().Connected })
	// The returning control plane's changes are applied: route /v2 away.
	e.listener.routes = [][2]string{{"/v2", "missing"}, {"/", "app"}}
	e.publish(t, e.clientCA.CRLPEM())
	waitUpdated(t, e.px.Proxy, "new route applied", func() bool {
		code, _, err := get(cl, e.url("/v2"))
		return err == nil && code == 503
	})
}
