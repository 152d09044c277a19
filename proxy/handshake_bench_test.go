package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/pki/pkitest"
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

// BenchmarkHandshakeConfig isolates what the proxy adds to each mutual-TLS
// handshake on the server's side: a per-connection clone of the chain's
// tls.Config (returned by GetConfigForClient) and, where a client
// certificate is requested, a key log writer for the precise refusal alert
// (alert.go), and the chain's own session ticket keys (tickets.go). "shared" returns the chain's config itself, as a proxy without
// per-connection callbacks would. In-process over net.Pipe, TLS 1.3.
func BenchmarkHandshakeConfig(b *testing.B) {
	ca := pkitest.NewCA(b, "Bench CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	chainCfg := &tls.Config{Certificates: []tls.Certificate{ca.Server("proxy.test").TLS()}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13}
	alice := ca.Client("alice").TLS()
	client := &tls.Config{RootCAs: pool, ServerName: "proxy.test", Certificates: []tls.Certificate{alice}}
	var tickets ticketKeys
	for _, mode := range []string{"shared", "clone", "clone+keylog", "clone+keylog+tickets"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, s := net.Pipe()
				var keys alertKeys
				listener := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
					if mode == "shared" {
						return chainCfg, nil
					}
					cfg := chainCfg.Clone()
					if strings.HasPrefix(mode, "clone+keylog") {
						cfg.KeyLogWriter = &keys
					}
					if mode == "clone+keylog+tickets" { // the chain's own ticket keys (tickets.go)
						cfg.SetSessionTicketKeys(tickets.keys("bench", "bench/proxy", time.Now()))
					}
					return cfg, nil
				}}
				done := make(chan error, 1)
				go func() {
					srv := tls.Server(s, listener)
					err := srv.Handshake()
					keys.forget()
					if err == nil {
						_, err = srv.Write([]byte{1})
					}
					done <- err
					s.Close()
				}()
				cl := tls.Client(c, client)
				_, err := cl.Read(make([]byte, 1))
				if err := errors.Join(err, <-done); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
