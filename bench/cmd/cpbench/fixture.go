package main

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certplane/certplane/pki"
)

// fixture is a certs/ and config/ pair as an operator would lay it out:
// one server certificate, one trust store "clients" (the CA that issues
// alice, other CAs, a CRL) and a config file of listeners.
type fixture struct {
	certs, config string
	ca            *pki.CA
	alice         *pki.Leaf
}

type fixtureOptions struct {
	listeners int // listener count; their addresses come from addr
	addr      func(i int) string
	extraCAs  int      // CAs added to the trust store beside the issuing CA
	serials   int      // random serials in the issuing CA's CRL
	backends  []string // endpoints of the one backend
	ca        *pki.CA  // the issuing CA; nil makes one
	crlPEM    []byte   // the CRL to write; nil signs one with serials entries
}

func newFixture(dir string, o fixtureOptions) (*fixture, error) {
	ca := o.ca
	if ca == nil {
		var err error
		if ca, err = pki.NewRootCA(pki.Options{CommonName: "cpbench root"}); err != nil {
			return nil, err
		}
	}
	f := &fixture{certs: filepath.Join(dir, "certs"), config: filepath.Join(dir, "config"), ca: ca}
	var err error
	if f.alice, err = ca.IssueClient(pki.Options{CommonName: "alice"}); err != nil {
		return nil, err
	}
	if err := f.rotateServer(); err != nil {
		return nil, err
	}
	bundle := [][]byte{pki.CertPEM(ca.Cert)}
	for i := range o.extraCAs {
		other, err := pki.NewRootCA(pki.Options{CommonName: fmt.Sprintf("cpbench other CA %05d", i)})
		if err != nil {
			return nil, err
		}
		bundle = append(bundle, pki.CertPEM(other.Cert))
	}
	crl := o.crlPEM
	if crl == nil {
		if crl, err = f.crl(o.serials); err != nil {
			return nil, err
		}
	}
	trust := filepath.Join(f.certs, "trust", "clients")
	if err := os.MkdirAll(trust, 0o755); err != nil {
		return nil, err
	}
	if err := pki.WriteFilesAtomic(
		pki.File{Path: filepath.Join(trust, "ca.pem"), Data: concat(bundle), Mode: 0o644},
		pki.File{Path: filepath.Join(trust, "ca.crl"), Data: crl, Mode: 0o644},
	); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(f.config, 0o755); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("listeners:\n")
	for i := range o.listeners {
		fmt.Fprintf(&b, "  - name: l%05d\n    address: %s\n    certificates: [default]\n    http2: false\n"+
			"    client_auth: {mode: verify, trust_store: clients}\n    routes: [{path_prefix: /, backend: b}]\n", i, o.addr(i))
	}
	fmt.Fprintf(&b, "backends:\n  - name: b\n    endpoints: [%s]\n", quoteList(o.backends))
	return f, pki.WriteFileAtomic(filepath.Join(f.config, "bench.yaml"), []byte(b.String()), 0o644)
}

// crl signs a PEM CRL of the issuing CA with n random serials.
func (f *fixture) crl(n int) ([]byte, error) {
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	rev := make([]pki.Revoked, n)
	for i := range rev {
		s, err := pki.RandomSerial()
		if err != nil {
			return nil, err
		}
		rev[i] = pki.Revoked{Serial: s, At: at}
	}
	der, err := f.ca.CRL(pki.CRLOptions{Revoked: rev, ThisUpdate: at})
	if err != nil {
		return nil, err
	}
	return pki.CRLPEM(der), nil
}

// newServer issues a server certificate for 127.0.0.1 (not yet written).
func (f *fixture) newServer() (*pki.Leaf, error) {
	return f.ca.IssueServer(pki.Options{CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
}

func (f *fixture) rotateServer() error {
	l, err := f.newServer()
	if err != nil {
		return err
	}
	return f.writeServer(l)
}

// writeServer replaces certs/server/default/tls.{crt,key}, each atomically.
func (f *fixture) writeServer(l *pki.Leaf) error {
	key, err := pki.KeyPEM(l.Key)
	if err != nil {
		return err
	}
	dir := filepath.Join(f.certs, "server", "default")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return pki.WriteFilesAtomic(
		pki.File{Path: filepath.Join(dir, "tls.crt"), Data: l.ChainPEM(), Mode: 0o644},
		pki.File{Path: filepath.Join(dir, "tls.key"), Data: key, Mode: 0o600},
	)
}

func (f *fixture) writeCRL(pem []byte) error {
	return pki.WriteFileAtomic(filepath.Join(f.certs, "trust", "clients", "ca.crl"), pem, 0o644)
}

// serverSerial is the serial of the leaf in a server Secret's chain.
func leafSerial(chainPEM []byte) string {
	certs, err := pki.ParseCerts(chainPEM)
	if err != nil || len(certs) == 0 {
		return ""
	}
	return certs[0].SerialNumber.Text(16)
}

func serialOf(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

func concat(parts [][]byte) []byte {
	var n int
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
