package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/pki"
)

// conformanceDir finds ../shared/conformance next to the repository root.
func conformanceDir(t testing.TB, sub string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root (go.mod) not found; skipping conformance data")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "conformance", sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("conformance data %s is absent (it lives outside the repository): %v", p, err)
	}
	return p
}

// serverCert is one loopback server certificate for all handshake tests.
func serverCert(t testing.TB) tls.Certificate {
	t.Helper()
	ca, err := pki.NewRootCA(pki.Options{CommonName: "mtls test server root"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServer(pki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, URIs: nil})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key, Leaf: leaf.Cert}
}

// handshake runs one real TLS handshake on loopback between a server whose
// client authentication is v and a client presenting client (nil: none), and
// returns the server's verdict and the peer chain it saw.
func handshake(t testing.TB, v *Verifier, srv tls.Certificate, client *tls.Certificate, version uint16) (*Failure, []*x509.Certificate) {
	t.Helper()
	type result struct {
		f    *Failure
		peer []*x509.Certificate
		err  error
	}
	done := make(chan result, 1)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{srv},
		ClientAuth:   v.ClientAuth(),
		ClientCAs:    v.ClientCAs(),
		MinVersion:   version,
		MaxVersion:   version,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if f := v.Verify(cs); f != nil {
				return f
			}
			return nil
		},
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := c.(*tls.Conn)
		herr := tc.Handshake()
		var f *Failure
		switch {
		case herr == nil || errors.As(herr, &f):
		case v.Mandatory() && strings.Contains(herr.Error(), "client didn't provide a certificate"):
			// Go's TLS stack refuses a missing mandatory certificate
			// itself (ClientAuth), before VerifyConnection.
			f = fail(ReasonNoCertificate, herr)
		default:
			done <- result{err: herr}
			return
		}
		// Complete the exchange so the client sees the outcome.
		if herr == nil {
			_, _ = tc.Write([]byte("ok"))
		}
		done <- result{f: f, peer: tc.ConnectionState().PeerCertificates}
	}()
	ccfg := &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // the server side is not under test
		MinVersion:         version,
		MaxVersion:         version,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if client == nil {
				return &tls.Certificate{}, nil
			}
			return client, nil // always send it, whatever CA names were advertised
		},
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), ccfg)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 2)
		_, _ = conn.Read(buf)
		conn.Close()
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("server handshake failed outside verification: %v", r.err)
		}
		return r.f, r.peer
	case <-time.After(15 * time.Second):
		t.Fatal("server handshake did not finish within 15s")
	}
	return nil, nil
}

var fixedNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return fixedNow }
