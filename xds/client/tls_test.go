package client

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"strings"
	"testing"

	"github.com/certplane/certplane/internal/testutil"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/certplane/certplane/pki"
)

func tlsCert(l *pki.Leaf) tls.Certificate {
	c := tls.Certificate{Certificate: [][]byte{l.Cert.Raw}, PrivateKey: l.Key, Leaf: l.Cert}
	for _, ch := range l.Chain {
		c.Certificate = append(c.Certificate, ch.Raw)
	}
	return c
}

// syncBuffer is a log sink safe for Run's goroutine and the test's.
type syncBuffer = testutil.SyncBuffer

func TestMutualTLSToTheControlPlane(t *testing.T) {
	checkNoLeaks(t)
	ca, err := pki.NewRootCA(pki.Options{CommonName: "xds CA"})
	if err != nil {
		t.Fatal(err)
	}
	serverLeaf, err := ca.IssueServer(pki.Options{DNSNames: []string{"xds.test"}})
	if err != nil {
		t.Fatal(err)
	}
	proxyLeaf, err := ca.IssueClient(pki.Options{CommonName: "proxy-1"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewRootCA(pki.Options{CommonName: "other CA"})
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := other.IssueClient(pki.Options{CommonName: "stranger"})
	if err != nil {
		t.Fatal(err)
	}
	pool, otherPool := x509.NewCertPool(), x509.NewCertPool()
	pool.AddCert(ca.Cert)
	otherPool.AddCert(other.Cert)

	lis := listenTCP(t)
	srv := startServer(t, lis, credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{tlsCert(serverLeaf)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	}))
	w := world1(t)
	srv.set(t, w)

	t.Run("client certificate accepted", func(t *testing.T) {
		h := runClient(t, Config{Target: lis.Addr().String(), TLS: &tls.Config{
			RootCAs: pool, Certificates: []tls.Certificate{tlsCert(proxyLeaf)}, ServerName: "xds.test",
		}})
		h.updates.wait(t, 0, "world1 over mTLS", hasVersions(w.versions()))
		_, p := srv.streams.wait(t, 0, "a stream", func(*peer.Peer) bool { return true })
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok || len(info.State.VerifiedChains) == 0 {
			t.Fatalf("server saw auth %T %v, want a verified TLS peer", p.AuthInfo, p.AuthInfo)
		}
		if cn := info.State.VerifiedChains[0][0].Subject.CommonName; cn != "proxy-1" {
			t.Errorf("server verified client %q, want proxy-1", cn)
		}
		if info.State.Version != tls.VersionTLS13 {
			t.Errorf("TLS version %x, want TLS 1.3", info.State.Version)
		}
	})

	for _, tc := range []struct {
		name    string
		tls     *tls.Config
		wantLog string // "": the server refuses after the client's TLS 1.3 handshake is done, so the client sees the alert or a broken pipe, by timing
	}{
		{"no client certificate", &tls.Config{RootCAs: pool, ServerName: "xds.test"}, ""},
		{"client certificate from another CA", &tls.Config{RootCAs: pool, ServerName: "xds.test",
			Certificates: []tls.Certificate{tlsCert(stranger)}}, ""},
		{"server not trusted", &tls.Config{RootCAs: otherPool, ServerName: "xds.test",
			Certificates: []tls.Certificate{tlsCert(proxyLeaf)}}, "x509: certificate signed by unknown authority"},
		{"wrong server name", &tls.Config{RootCAs: pool, ServerName: "other.test",
			Certificates: []tls.Certificate{tlsCert(proxyLeaf)}}, "x509: certificate is valid for xds.test, not other.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			streams := srv.streams.len()
			var logs syncBuffer
			h := runClient(t, Config{Target: lis.Addr().String(), TLS: tc.tls,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			h.attempts.wait(t, 0, "two failed attempts", func(n int) bool { return n >= 2 })
			h.stop(t)
			for _, up := range h.conn.all() {
				if up {
					t.Errorf("reported connected with a refused handshake")
				}
			}
			if n := srv.streams.len(); n != streams {
				t.Errorf("server opened %d streams for a refused client", n-streams)
			}
			if !strings.Contains(logs.String(), "xDS stream ended; reconnecting") || !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log does not say %q:\n%s", tc.wantLog, logs.String())
			}
		})
	}
}
