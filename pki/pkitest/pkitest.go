// Package pkitest is the one test helper that builds real certificates,
// CRLs and certificate directories for every certplane test (STYLE.md rule
// 9). Everything is generated on the fly from a testing.TB with package pki,
// so tests exercise exactly what `certplane pki` issues. Every helper calls
// tb.Fatal on failure: no error returns to check.
//
// # Certificate authorities
//
//	root := pkitest.NewCA(t, "test root")              // self-signed root, ECDSA P-256
//	inter := root.Intermediate("test issuing CA")       // root -> inter
//	other := pkitest.NewCA(t, "untrusted root")         // a CA nobody trusts
//
// # Leaves
//
// Server(name) puts name in the CN and as a DNS SAN (an IP SAN when it parses
// as an IP); Client(name) puts name in the CN. Options add or break things:
//
//	srv := inter.Server("localhost", pkitest.IPs("127.0.0.1"))
//	alice := root.Client("alice", pkitest.URIs("spiffe://example.org/alice"))
//	old := root.Client("old", pkitest.Expired())            // expired yesterday
//	early := root.Client("early", pkitest.NotYetValid())    // valid from tomorrow
//	eve := root.Client("eve", pkitest.EKU(x509.ExtKeyUsageServerAuth)) // wrong EKU
//	bare := root.Client("bare", pkitest.NoEKU())             // no EKU extension at all
//	stranger := other.Client("stranger")                     // untrusted CA
//	rsa := root.Server("rsa.example", pkitest.KeyType(pki.RSA2048))
//
// A Leaf embeds *pki.Leaf (Cert, Key, Chain, ChainPEM) and adds CertPEM,
// KeyPEM and TLS (a tls.Certificate with the chain, for tls.Config).
//
// # Revocation and CRLs
//
//	root.Revoke(mallory)              // recorded on the CA, revoked a minute ago
//	der := root.CRL()                 // DER CRL listing every revoked serial
//	pemCRL := root.CRLPEM()           // the same, PEM
//	stale := root.CRL(pkitest.CRLExpired())       // nextUpdate yesterday
//	empty := inter.CRL()              // a CA with nothing revoked still gets a valid CRL
//
// Each CRL call takes the next CRL number (1, 2, 3...) unless CRLNumber is
// given, so successive CRLs of one CA differ, as a real CA's do.
//
// Impostor returns a CA with the same subject as the original but another
// key: what it signs (leaves, CRLs) names the right issuer but fails the
// signature check, the attack a verifier must refuse (crl-wrong-signer).
//
// # Certificate and config directories
//
// Tree lays files out exactly as DESIGN.md "Certificate directory" says,
// under tb.TempDir(). Every write is atomic (temp file + rename), so a
// watcher under test never sees a partial file.
//
//	tr := pkitest.NewTree(t)                 // tr.Certs, tr.Config
//	tr.Server("default", srv)                // certs/server/default/tls.crt + tls.key
//	tr.ServerFlat("legacy", srv)             // certs/server/legacy.crt + legacy.key
//	tr.Client("upstream", alice)             // certs/client/upstream/tls.crt + tls.key
//	tr.ClientFlat("upstream2", alice)        // certs/client/upstream2.crt + .key
//	tr.Trust("clients", "ca.pem", root.CertPEM(), inter.CertPEM())
//	tr.Trust("clients", "root.crl", root.CRLPEM())
//	tr.Trust("bundle", "all.pem", root.CertPEM(), root.CRLPEM()) // CAs and CRLs in one file
//	tr.KubeSecret("server/default", srv)     // ..data symlink layout; call again to swap atomically
//	tr.WriteConfig("listeners.yaml", yaml)   // config/listeners.yaml
//	tr.Write("certs/trust/clients/junk.pem", []byte("not pem"), 0o644)
//	tr.Remove("certs/trust/clients/root.crl")
//
// NewStandard builds in one call what `certplane init` scaffolds: a root
// CA, a server key pair "default" for localhost and 127.0.0.1, a trust store
// "clients" with the CA and a CRL revoking mallory, valid alice, revoked
// mallory, a client of an untrusted CA, and config/listeners.yaml.
package pkitest

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/certplane/certplane/pki"
)

// Option adjusts the pki.Options of one CA or leaf.
type Option func(*pki.Options)

// DNS adds DNS SANs.
func DNS(names ...string) Option {
	return func(o *pki.Options) { o.DNSNames = append(o.DNSNames, names...) }
}

// IPs adds IP SANs. A malformed literal is a bug in the test: it panics.
func IPs(ips ...string) Option {
	parsed := make([]net.IP, 0, len(ips))
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			panic("pkitest.IPs: not an IP literal: " + s)
		}
		parsed = append(parsed, ip)
	}
	return func(o *pki.Options) { o.IPs = append(o.IPs, parsed...) }
}

// URIs adds URI SANs (for example SPIFFE IDs). A malformed URI panics.
func URIs(uris ...string) Option {
	parsed := make([]*url.URL, 0, len(uris))
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			panic("pkitest.URIs: " + err.Error())
		}
		parsed = append(parsed, u)
	}
	return func(o *pki.Options) { o.URIs = append(o.URIs, parsed...) }
}

// Emails adds email SANs.
func Emails(addrs ...string) Option {
	return func(o *pki.Options) { o.Emails = append(o.Emails, addrs...) }
}

// CN overrides the common name (Server and Client default it to their name).
func CN(cn string) Option { return func(o *pki.Options) { o.CommonName = cn } }

// Organization sets the subject's O attribute.
func Organization(org string) Option { return func(o *pki.Options) { o.Organization = org } }

// RawSubject sets the subject's DER as written (CN and Organization are
// then ignored in the certificate).
func RawSubject(der []byte) Option { return func(o *pki.Options) { o.RawSubject = der } }

// KeyType picks the key algorithm (default ECDSA P-256).
func KeyType(kt pki.KeyType) Option { return func(o *pki.Options) { o.KeyType = kt } }

// Key uses an existing key instead of generating one (for key-mismatch tests:
// issue two leaves, then pair one's cert with the other's key).
func Key(k crypto.Signer) Option { return func(o *pki.Options) { o.Key = k } }

// Serial sets the serial number instead of a random 128-bit one.
func Serial(n *big.Int) Option { return func(o *pki.Options) { o.Serial = n } }

// Validity sets the lifetime from NotBefore (default now minus 5 minutes).
func Validity(d time.Duration) Option { return func(o *pki.Options) { o.Validity = d } }

// ValidBetween sets NotBefore and NotAfter exactly.
func ValidBetween(notBefore, notAfter time.Time) Option {
	return func(o *pki.Options) { o.NotBefore, o.NotAfter = notBefore, notAfter }
}

// Expired makes a certificate that expired a day ago (valid for one day
// before that).
func Expired() Option {
	now := time.Now().UTC().Truncate(time.Second)
	return ValidBetween(now.Add(-48*time.Hour), now.Add(-24*time.Hour))
}

// NotYetValid makes a certificate valid from tomorrow.
func NotYetValid() Option {
	now := time.Now().UTC().Truncate(time.Second)
	return ValidBetween(now.Add(24*time.Hour), now.Add(48*time.Hour))
}

// EKU replaces the extended key usages (serverAuth for Server, clientAuth for
// Client): EKU(x509.ExtKeyUsageServerAuth) on a Client is the wrong-EKU case.
func EKU(ekus ...x509.ExtKeyUsage) Option {
	return func(o *pki.Options) { o.ExtKeyUsage = append([]x509.ExtKeyUsage{}, ekus...) }
}

// NoEKU omits the extended key usage extension (any usage, per RFC 5280).
func NoEKU() Option { return func(o *pki.Options) { o.ExtKeyUsage = []x509.ExtKeyUsage{} } }

// NotCA makes a "CA" with basicConstraints CA:FALSE: what it signs must be
// refused.
func NotCA() Option { return func(o *pki.Options) { o.NotCA = true } }

// PathLenZero sets pathLenConstraint 0 on a CA: it may not sign CAs.
func PathLenZero() Option { return func(o *pki.Options) { o.PathLenZero = true } }

// CRLURL embeds CRL Distribution Points (certificates issued with it, or
// the CA itself when given to NewCA or Intermediate).
func CRLURL(urls ...string) Option { return func(o *pki.Options) { o.CRLURLs = urls } }

// OCSPURL embeds OCSP responders in Authority Information Access.
func OCSPURL(urls ...string) Option { return func(o *pki.Options) { o.OCSPURLs = urls } }

func apply(opts []Option) pki.Options {
	var o pki.Options
	for _, fn := range opts {
		fn(&o)
	}
	return o
}

// CA is a test certificate authority. It embeds *pki.CA (Cert, Key, Chain)
// and remembers the serials it revoked and the last CRL number it used.
type CA struct {
	*pki.CA
	tb        testing.TB
	revoked   []pki.Revoked
	crlNumber int64
}

// NewCA creates a self-signed root CA named name.
func NewCA(tb testing.TB, name string, opts ...Option) *CA {
	tb.Helper()
	o := apply(opts)
	if o.CommonName == "" {
		o.CommonName = name
	}
	ca, err := pki.NewRootCA(o)
	if err != nil {
		tb.Fatalf("pkitest: root CA %q: %v", name, err)
	}
	return &CA{CA: ca, tb: tb}
}

// Intermediate creates a CA named name, signed by ca.
func (ca *CA) Intermediate(name string, opts ...Option) *CA {
	ca.tb.Helper()
	o := apply(opts)
	if o.CommonName == "" {
		o.CommonName = name
	}
	sub, err := ca.NewIntermediate(o)
	if err != nil {
		ca.tb.Fatalf("pkitest: intermediate CA %q: %v", name, err)
	}
	return &CA{CA: sub, tb: ca.tb}
}

// Impostor returns a root CA with ca's exact subject but a fresh key. Leaves
// and CRLs it signs name ca as their issuer but do not verify against it.
func (ca *CA) Impostor() *CA {
	ca.tb.Helper()
	key, err := pki.NewKey(pki.ECDSAP256)
	if err != nil {
		ca.tb.Fatalf("pkitest: impostor key: %v", err)
	}
	// Build through pki for correct extensions, then reuse the original
	// subject: pki only sets the CN, and the impostor must match exactly.
	imp, err := pki.NewRootCA(pki.Options{CommonName: ca.Cert.Subject.CommonName, Key: key})
	if err != nil {
		ca.tb.Fatalf("pkitest: impostor of %q: %v", ca.Cert.Subject.CommonName, err)
	}
	return &CA{CA: imp, tb: ca.tb}
}

// Server issues a serverAuth certificate. name is the CN and a SAN (IP SAN if
// it parses as an IP, else DNS); options may add more SANs or break it.
func (ca *CA) Server(name string, opts ...Option) *Leaf {
	ca.tb.Helper()
	o := apply(opts)
	if o.CommonName == "" {
		o.CommonName = name
	}
	if ip := net.ParseIP(name); ip != nil {
		o.IPs = append([]net.IP{ip}, o.IPs...)
	} else {
		o.DNSNames = append([]string{name}, o.DNSNames...)
	}
	l, err := ca.IssueServer(o)
	if err != nil {
		ca.tb.Fatalf("pkitest: server certificate %q: %v", name, err)
	}
	return &Leaf{Leaf: l, tb: ca.tb}
}

// Client issues a clientAuth certificate whose CN is name.
func (ca *CA) Client(name string, opts ...Option) *Leaf {
	ca.tb.Helper()
	o := apply(opts)
	if o.CommonName == "" {
		o.CommonName = name
	}
	l, err := ca.IssueClient(o)
	if err != nil {
		ca.tb.Fatalf("pkitest: client certificate %q: %v", name, err)
	}
	return &Leaf{Leaf: l, tb: ca.tb}
}

// Revoke records leaves as revoked one minute ago; the next CRL lists them.
func (ca *CA) Revoke(leaves ...*Leaf) {
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	for _, l := range leaves {
		ca.revoked = append(ca.revoked, pki.Revoked{Serial: l.Cert.SerialNumber, At: at})
	}
}

// RevokeSerial records a serial as revoked at the given time.
func (ca *CA) RevokeSerial(serial *big.Int, at time.Time) {
	ca.revoked = append(ca.revoked, pki.Revoked{Serial: serial, At: at})
}

// CRLOption adjusts one CRL.
type CRLOption func(*pki.CRLOptions)

// CRLNumber sets the CRL number instead of the CA's next one.
func CRLNumber(n int64) CRLOption {
	return func(o *pki.CRLOptions) { o.Number = big.NewInt(n) }
}

// CRLTimes sets thisUpdate and nextUpdate exactly.
func CRLTimes(thisUpdate, nextUpdate time.Time) CRLOption {
	return func(o *pki.CRLOptions) { o.ThisUpdate, o.NextUpdate = thisUpdate, nextUpdate }
}

// CRLExpired makes a CRL whose nextUpdate passed a day ago: verifiers must
// fail closed on it.
func CRLExpired() CRLOption {
	now := time.Now().UTC().Truncate(time.Second)
	return CRLTimes(now.Add(-48*time.Hour), now.Add(-24*time.Hour))
}

// CRLNotYetValid makes a CRL whose thisUpdate is tomorrow.
func CRLNotYetValid() CRLOption {
	now := time.Now().UTC().Truncate(time.Second)
	return CRLTimes(now.Add(24*time.Hour), now.Add(48*time.Hour))
}

// CRLRevoked replaces the CA's revocation list for this CRL only.
func CRLRevoked(leaves ...*Leaf) CRLOption {
	return func(o *pki.CRLOptions) {
		o.Revoked = nil
		at := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
		for _, l := range leaves {
			o.Revoked = append(o.Revoked, pki.Revoked{Serial: l.Cert.SerialNumber, At: at})
		}
	}
}

// CRL returns a DER CRL signed by ca listing every serial revoked so far.
func (ca *CA) CRL(opts ...CRLOption) []byte {
	ca.tb.Helper()
	ca.crlNumber++
	o := pki.CRLOptions{
		Revoked: append([]pki.Revoked{}, ca.revoked...),
		Number:  big.NewInt(ca.crlNumber),
	}
	for _, fn := range opts {
		fn(&o)
	}
	der, err := ca.CA.CRL(o)
	if err != nil {
		ca.tb.Fatalf("pkitest: %v", err)
	}
	return der
}

// CRLPEM is CRL encoded as PEM.
func (ca *CA) CRLPEM(opts ...CRLOption) []byte {
	ca.tb.Helper()
	return pki.CRLPEM(ca.CRL(opts...))
}

// CertPEM returns this CA's certificate alone, PEM.
func (ca *CA) CertPEM() []byte { return pki.CertPEM(ca.Cert) }

// BundlePEM returns this CA's certificate followed by its issuers up to the
// root: a complete trust bundle for what it issues.
func (ca *CA) BundlePEM() []byte {
	return pki.CertPEM(append([]*x509.Certificate{ca.Cert}, ca.Chain...)...)
}

// Leaf is an issued certificate with its key. It embeds *pki.Leaf.
type Leaf struct {
	*pki.Leaf
	tb testing.TB
}

// CertPEM returns the leaf followed by its intermediates, PEM: a tls.crt.
func (l *Leaf) CertPEM() []byte { return l.ChainPEM() }

// KeyPEM returns the private key as PKCS#8 PEM: a tls.key.
func (l *Leaf) KeyPEM() []byte {
	l.tb.Helper()
	b, err := pki.KeyPEM(l.Key)
	if err != nil {
		l.tb.Fatalf("pkitest: %v", err)
	}
	return b
}

// TLS returns the leaf as a tls.Certificate carrying its chain.
func (l *Leaf) TLS() tls.Certificate { return l.TLSCertificate() }

// Serial is the certificate's serial number.
func (l *Leaf) Serial() *big.Int { return l.Cert.SerialNumber }
