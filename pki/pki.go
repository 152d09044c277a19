// Package pki creates the certificates a mutual-TLS deployment needs: root and
// intermediate CAs, server and client certificates, CRLs and PKCS#12 bundles.
// It backs `certplane pki` and is the one source of real certificates for the
// tests of every other package.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // SKI derivation per RFC 5280 4.2.1.2 method 1, not a signature.
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// KeyType names a key algorithm and size.
type KeyType string

// Supported key types. ECDSA P-256 is the default: fast handshakes, small certs.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"
)

// KeyTypes lists every supported key type, default first.
var KeyTypes = []KeyType{ECDSAP256, RSA2048, RSA3072, RSA4096}

// NewKey generates a private key of the given type ("" means ECDSA P-256).
func NewKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case "", ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	default:
		return nil, fmt.Errorf("unknown key type %q (want one of ecdsa-p256, rsa-2048, rsa-3072, rsa-4096)", kt)
	}
}

// Options shapes one certificate. Zero values give sane defaults; the odd
// fields (ExtKeyUsage override, explicit validity) exist so tests can build
// the wrong certificates a verifier must refuse.
type Options struct {
	CommonName string
	// Organization is optional; it lands in the subject's O attribute.
	Organization string
	DNSNames     []string
	IPs          []net.IP
	URIs         []*url.URL
	Emails       []string
	KeyType      KeyType
	// Key, when set, is used instead of generating one.
	Key crypto.Signer
	// NotBefore defaults to now minus five minutes (clock skew).
	NotBefore time.Time
	// NotAfter defaults to NotBefore + Validity.
	NotAfter time.Time
	// Validity defaults to 10 years for CAs and 1 year for leaves.
	Validity time.Duration
	// ExtKeyUsage overrides the default EKU (serverAuth or clientAuth).
	// Set to an empty non-nil slice for no EKU extension at all.
	ExtKeyUsage []x509.ExtKeyUsage
	// MaxPathLen applies to CAs; 0 means unlimited unless PathLenZero.
	MaxPathLen  int
	PathLenZero bool
	// Serial overrides the random 128-bit serial.
	Serial *big.Int
	// NotCA makes a "CA" with basicConstraints CA:FALSE (for attack tests).
	NotCA bool
	// RawSubject, when set, is the subject's DER as written (tests of
	// names crypto/x509 cannot build: multi-valued RDNs, string types).
	RawSubject []byte
	// CRLURLs become the certificate's CRL Distribution Points, where
	// relying parties (certplane's crl_fetch) fetch the CRL covering it.
	CRLURLs []string
	// OCSPURLs become the OCSP responders of its Authority Information
	// Access, which certplane's client_auth.ocsp asks.
	OCSPURLs []string
}

// CA is a certificate authority: its certificate, its key, and the chain of
// issuers above it (empty for a root).
type CA struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate // issuers above Cert, nearest first; empty for a root
}

// Leaf is an issued end-entity certificate with its key and issuer chain.
type Leaf struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate // issuers above Cert, nearest first, root excluded
}

// RandomSerial returns a random positive 128-bit serial number.
func RandomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1BitString
	}
	if _, err := asn1Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes) //nolint:gosec // RFC 5280 key identifier
	return sum[:], nil
}

func (o *Options) prepare(isCA bool) (crypto.Signer, *x509.Certificate, error) {
	key := o.Key
	if key == nil {
		k, err := NewKey(o.KeyType)
		if err != nil {
			return nil, nil, err
		}
		key = k
	}
	serial := o.Serial
	if serial == nil {
		s, err := RandomSerial()
		if err != nil {
			return nil, nil, err
		}
		serial = s
	}
	nb := o.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-5 * time.Minute).UTC().Truncate(time.Second)
	}
	na := o.NotAfter
	if na.IsZero() {
		v := o.Validity
		if v == 0 {
			v = 365 * 24 * time.Hour
			if isCA {
				v = 10 * 365 * 24 * time.Hour
			}
		}
		na = nb.Add(v)
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	subject := pkix.Name{CommonName: o.CommonName}
	if o.Organization != "" {
		subject.Organization = []string{o.Organization}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		RawSubject:            o.RawSubject,
		NotBefore:             nb,
		NotAfter:              na,
		DNSNames:              o.DNSNames,
		IPAddresses:           o.IPs,
		URIs:                  o.URIs,
		EmailAddresses:        o.Emails,
		SubjectKeyId:          ski,
		BasicConstraintsValid: true,
		CRLDistributionPoints: o.CRLURLs,
		OCSPServer:            o.OCSPURLs,
	}
	return key, tmpl, nil
}

// NewRootCA creates a self-signed root CA.
func NewRootCA(o Options) (*CA, error) {
	if o.CommonName == "" {
		return nil, errors.New("a CA needs a common name")
	}
	key, tmpl, err := o.prepare(true)
	if err != nil {
		return nil, err
	}
	caTemplate(tmpl, o)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("sign root CA %q: %w", o.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse root CA %q: %w", o.CommonName, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

func caTemplate(tmpl *x509.Certificate, o Options) {
	tmpl.IsCA = !o.NotCA
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	if o.NotCA {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	switch {
	case o.PathLenZero:
		tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true
	case o.MaxPathLen > 0:
		tmpl.MaxPathLen = o.MaxPathLen
	default:
		tmpl.MaxPathLen = -1
	}
	if o.ExtKeyUsage != nil {
		tmpl.ExtKeyUsage = o.ExtKeyUsage
	}
}

// NewIntermediate creates a CA signed by ca.
func (ca *CA) NewIntermediate(o Options) (*CA, error) {
	if o.CommonName == "" {
		return nil, errors.New("a CA needs a common name")
	}
	if o.CommonName == ca.Cert.Subject.CommonName {
		return nil, fmt.Errorf("intermediate CA name %q equals its issuer's; pick a distinct name", o.CommonName)
	}
	key, tmpl, err := o.prepare(true)
	if err != nil {
		return nil, err
	}
	caTemplate(tmpl, o)
	cert, err := ca.sign(tmpl, key.Public())
	if err != nil {
		return nil, fmt.Errorf("sign intermediate CA %q: %w", o.CommonName, err)
	}
	chain := append([]*x509.Certificate{ca.Cert}, ca.Chain...)
	return &CA{Cert: cert, Key: key, Chain: chain}, nil
}

func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	tmpl.AuthorityKeyId = ca.Cert.SubjectKeyId
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// IssueServer issues a serverAuth certificate. At least one DNS name or IP is
// required: browsers and Go ignore the CN.
func (ca *CA) IssueServer(o Options) (*Leaf, error) {
	if len(o.DNSNames) == 0 && len(o.IPs) == 0 {
		return nil, errors.New("a server certificate needs at least one DNS name or IP SAN")
	}
	if o.CommonName == "" {
		if len(o.DNSNames) > 0 {
			o.CommonName = o.DNSNames[0]
		} else {
			o.CommonName = o.IPs[0].String()
		}
	}
	return ca.issueLeaf(o, x509.ExtKeyUsageServerAuth)
}

// IssueClient issues a clientAuth certificate.
func (ca *CA) IssueClient(o Options) (*Leaf, error) {
	if o.CommonName == "" {
		return nil, errors.New("a client certificate needs a common name")
	}
	return ca.issueLeaf(o, x509.ExtKeyUsageClientAuth)
}

func (ca *CA) issueLeaf(o Options, eku x509.ExtKeyUsage) (*Leaf, error) {
	if o.CommonName == ca.Cert.Subject.CommonName {
		return nil, fmt.Errorf("certificate name %q equals its CA's; pick a distinct name", o.CommonName)
	}
	key, tmpl, err := o.prepare(false)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if _, isRSA := key.(*rsa.PrivateKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{eku}
	if o.ExtKeyUsage != nil {
		tmpl.ExtKeyUsage = o.ExtKeyUsage
	}
	cert, err := ca.sign(tmpl, key.Public())
	if err != nil {
		return nil, fmt.Errorf("sign certificate %q: %w", o.CommonName, err)
	}
	chain := []*x509.Certificate{}
	if len(ca.Chain) > 0 { // an intermediate issued it: send the intermediates, not the root
		chain = append(chain, ca.Cert)
		chain = append(chain, ca.Chain[:len(ca.Chain)-1]...)
	}
	return &Leaf{Cert: cert, Key: key, Chain: chain}, nil
}

// Revoked is one CRL entry.
type Revoked struct {
	Serial *big.Int
	At     time.Time
	Reason Reason // Unspecified: no reasonCode extension (RFC 5280 5.3.1)
}

// CRLOptions shapes a CRL.
type CRLOptions struct {
	Revoked    []Revoked
	Number     *big.Int // defaults to 1
	ThisUpdate time.Time
	NextUpdate time.Time // defaults to ThisUpdate + 30 days
}

// CRL signs a CRL with the CA's key and returns its DER.
func (ca *CA) CRL(o CRLOptions) ([]byte, error) {
	if o.Number == nil {
		o.Number = big.NewInt(1)
	}
	if o.ThisUpdate.IsZero() {
		o.ThisUpdate = time.Now().Add(-5 * time.Minute).UTC().Truncate(time.Second)
	}
	if o.NextUpdate.IsZero() {
		o.NextUpdate = o.ThisUpdate.Add(30 * 24 * time.Hour)
	}
	entries := make([]x509.RevocationListEntry, 0, len(o.Revoked))
	for _, r := range o.Revoked {
		at := r.At
		if at.IsZero() {
			at = o.ThisUpdate
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: at, ReasonCode: int(r.Reason)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    o.Number,
		ThisUpdate:                o.ThisUpdate,
		NextUpdate:                o.NextUpdate,
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL of %q: %w", ca.Cert.Subject.CommonName, err)
	}
	return der, nil
}

// CertPEM encodes certificates as concatenated PEM blocks.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// CRLPEM encodes a DER CRL as PEM.
func CRLPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// KeyPEM encodes a private key as PKCS#8 PEM.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ChainPEM returns the leaf followed by its chain, as a server presents it.
func (l *Leaf) ChainPEM() []byte {
	return CertPEM(append([]*x509.Certificate{l.Cert}, l.Chain...)...)
}
