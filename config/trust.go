package config

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// ParseTrustStore parses and validates a trust store with the current time.
// See Loader.ParseTrustStore.
func ParseTrustStore(name string, files map[string][]byte) (*TrustStore, []Problem, error) {
	return Loader{}.ParseTrustStore(name, files)
}

// ParseTrustStore builds trust store name from its files, keyed by path:
// *.crl files hold CRLs (PEM or DER, one or many); every other file is a PEM
// bundle of CA certificates that may also hold CRL blocks, as Envoy's
// trusted_ca may. Only CA certificates are admitted (a v1 self-signed root
// counts, with a warning); every CRL must parse and be signed by a CA of this
// store. A duplicate CA is a warning and kept once: a bundle concatenated
// twice verifies exactly like one copy, so refusing it would take traffic
// down for nothing.
//
// The unit of admission is the file (see storeAdmission): a defective file
// is left out, or replaced by its last good content when l.Trust remembers
// one, and the store is still returned with an error naming the file. A nil
// store means the store as a whole is refused (no CA left, or no CRL left
// while a file that may have carried one is out). The error joins every
// defect, each naming its file.
func (l Loader) ParseTrustStore(name string, files map[string][]byte) (*TrustStore, []Problem, error) {
	in := make([]trustInput, 0, len(files))
	for p, data := range files {
		in = append(in, trustInput{path: p, data: data})
	}
	return l.admitTrustStore(name, in)
}

// trustFile is one trust store file, parsed: its CA certificates, each
// admitted by checkCA, and its CRLs, syntax checked, in document order.
type trustFile struct {
	cas  []*x509.Certificate
	crls []*x509.RevocationList
}

// parseTrustFile parses one file of a trust store. A defect anywhere fails
// the whole file: the file is the unit of admission. warn receives the
// warnings about its CAs.
func (l Loader) parseTrustFile(file string, data []byte, now time.Time, warn func(error)) (*trustFile, error) {
	if strings.EqualFold(filepath.Ext(file), ".crl") {
		rls, err := ParseCRLs(file, data)
		if err != nil {
			return nil, err
		}
		return &trustFile{crls: rls}, nil
	}
	blocks, err := decodePEM(data, "openssl x509 -inform der -in FILE -out FILE.pem")
	if err != nil {
		return nil, fileErr(file, err)
	}
	tf := &trustFile{}
	var errs []error
	for _, b := range blocks {
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				errs = append(errs, fileErr(file, fmt.Errorf("certificate at line %d: %w", b.line, err)))
				continue
			}
			n := len(tf.cas)
			if err := checkCA(c, n, now, warn); err != nil {
				errs = append(errs, fileErr(file, err))
			} else if left := c.NotAfter.Sub(now); left < l.expiryWarning() {
				warn(fmt.Errorf("%s expires on %s, in %d days", certName(n, c), c.NotAfter.UTC().Format(timeFormat), int(left.Hours()/24)))
			}
			tf.cas = append(tf.cas, c)
		case "X509 CRL":
			rl, err := x509.ParseRevocationList(b.Bytes)
			if err != nil {
				errs = append(errs, fileErr(file, fmt.Errorf("CRL at line %d: %w", b.line, err)))
				continue
			}
			tf.crls = append(tf.crls, rl)
		default:
			errs = append(errs, fileErr(file, fmt.Errorf("unexpected %q PEM block at line %d; a trust store holds only CERTIFICATE and X509 CRL blocks", b.Type, b.line)))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return tf, nil
}

// crlExpiryWarning is how close a CRL's nextUpdate must be to warn. CRLs
// usually live days to weeks, so the certificates' 30 days would always fire.
const crlExpiryWarning = 24 * time.Hour

// errNoCA is the defect of a trust store without any CA certificate.
var errNoCA = errors.New("trust store holds no CA certificate")

// checkCA admits certificate i of a bundle as a trust anchor.
func checkCA(c *x509.Certificate, i int, now time.Time, warn func(error)) error {
	name := certName(i, c)
	if c.Version < 3 {
		if !selfSigned(c) {
			return fmt.Errorf("%s is an X.509 v1 certificate that is not self-signed; it cannot be a CA: reissue it as a v3 CA", name)
		}
		warn(fmt.Errorf("%s is an X.509 v1 self-signed root; it is accepted as a trust anchor, as OpenSSL and Envoy do, but should be reissued as a v3 CA", name))
	} else if !c.BasicConstraintsValid || !c.IsCA {
		return fmt.Errorf("%s is not a CA certificate (no basicConstraints CA:TRUE); a trust store holds only CA certificates", name)
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%s is not valid until %s", name, c.NotBefore.UTC().Format(timeFormat))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("%s expired on %s; remove it from the bundle or replace it", name, c.NotAfter.UTC().Format(timeFormat))
	}
	if alg, weak := weakSignature(c.SignatureAlgorithm); weak {
		warn(fmt.Errorf("%s is signed with %s (%s); it still works as a trust anchor, but client certificates signed with %s are refused at the handshake (bad_signature_algorithm)", name, alg, c.SignatureAlgorithm, alg))
	}
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		warn(fmt.Errorf("%s has a weak RSA key of %d bits", name, k.N.BitLen()))
	}
	return nil
}

// ParseCRLs parses a CRL file: PEM (one or many X509 CRL blocks) or DER
// (exactly one CRL). It checks syntax only; see ParseTrustStore for the
// signature and date checks.
func ParseCRLs(file string, data []byte) ([]*x509.RevocationList, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fileErr(file, errors.New("empty file"))
	}
	if !bytes.Contains(data, []byte("-----BEGIN ")) {
		rl, err := x509.ParseRevocationList(data)
		if err != nil {
			return nil, fileErr(file, fmt.Errorf("not a PEM or DER CRL: %w", err))
		}
		return []*x509.RevocationList{rl}, nil
	}
	blocks, err := decodePEM(data, "")
	if err != nil {
		return nil, fileErr(file, err)
	}
	var out []*x509.RevocationList
	for _, b := range blocks {
		if b.Type != "X509 CRL" {
			return nil, fileErr(file, fmt.Errorf("unexpected %q PEM block at line %d; a .crl file holds only X509 CRL blocks", b.Type, b.line))
		}
		rl, err := x509.ParseRevocationList(b.Bytes)
		if err != nil {
			return nil, fileErr(file, fmt.Errorf("CRL at line %d: %w", b.line, err))
		}
		out = append(out, rl)
	}
	return out, nil
}

// CRL extensions OpenSSL and BoringSSL understand. Any other critical
// extension must make the CRL unusable (RFC 5280 5.2).
var (
	oidAuthorityKeyID   = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber        = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRL         = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDistPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidFreshestCRL      = asn1.ObjectIdentifier{2, 5, 29, 46}
	oidAuthorityInfo    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidReasonCode       = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidityDate   = asn1.ObjectIdentifier{2, 5, 29, 24}
)

func crlName(i int, rl *x509.RevocationList) string {
	return fmt.Sprintf("CRL %d (issuer %s)", i+1, rl.Issuer.String())
}

// checkCRL admits CRL i of a file against the CAs of its store and returns
// the CA whose signature it bears. An expired CRL passes: it is served, so
// that the handshakes of its CA's clients fail closed (see crlExpired).
func checkCRL(rl *x509.RevocationList, i int, cas []*x509.Certificate, store string, now time.Time) (*x509.Certificate, error) {
	name := crlName(i, rl)
	for _, e := range rl.Extensions {
		switch {
		case e.Id.Equal(oidDeltaCRL):
			return nil, fmt.Errorf("%s is a delta CRL; delta CRLs are not supported: publish a complete CRL", name)
		case !e.Critical, e.Id.Equal(oidAuthorityKeyID), e.Id.Equal(oidCRLNumber),
			e.Id.Equal(oidIssuingDistPoint), e.Id.Equal(oidFreshestCRL), e.Id.Equal(oidAuthorityInfo):
		default:
			return nil, fmt.Errorf("%s has an unknown critical extension %s; it cannot be used (RFC 5280 5.2)", name, e.Id)
		}
	}
	for _, entry := range rl.RevokedCertificateEntries {
		for _, e := range entry.Extensions {
			if e.Critical && !e.Id.Equal(oidReasonCode) && !e.Id.Equal(oidInvalidityDate) {
				return nil, fmt.Errorf("%s: the entry for serial %s has an unknown critical extension %s; the CRL cannot be used (RFC 5280 5.3)", name, entry.SerialNumber, e.Id)
			}
		}
	}
	issuer, err := crlIssuer(rl, cas)
	if err != nil {
		return nil, fmt.Errorf("%s is not signed by any CA of trust store %q: %w", name, store, err)
	}
	if now.Before(rl.ThisUpdate) {
		return nil, fmt.Errorf("%s is not valid until %s (thisUpdate)", name, rl.ThisUpdate.UTC().Format(timeFormat))
	}
	return issuer, nil
}

// crlIssuer finds the CA among cas whose signature rl bears.
func crlIssuer(rl *x509.RevocationList, cas []*x509.Certificate) (*x509.Certificate, error) {
	var lastErr error
	for _, ca := range cas {
		if !bytes.Equal(rl.RawIssuer, ca.RawSubject) {
			continue
		}
		if err := rl.CheckSignatureFrom(ca); err != nil {
			lastErr = err
			continue
		}
		return ca, nil
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, fmt.Errorf("no CA there has subject %s", rl.Issuer.String())
}

// crlExpired is the defect of a CRL whose nextUpdate has passed.
func crlExpired(rl *x509.RevocationList, i int, now time.Time) error {
	if rl.NextUpdate.IsZero() || !now.After(rl.NextUpdate) {
		return nil
	}
	return fmt.Errorf("%s expired on %s (nextUpdate); an expired CRL fails closed: publish a fresh one", crlName(i, rl), rl.NextUpdate.UTC().Format(timeFormat))
}

// crlExpiring is the warning for a CRL whose nextUpdate is near.
func crlExpiring(rl *x509.RevocationList, i int, now time.Time) error {
	left := rl.NextUpdate.Sub(now)
	if rl.NextUpdate.IsZero() || left < 0 || left >= crlExpiryWarning {
		return nil
	}
	return fmt.Errorf("%s expires on %s (nextUpdate), in %d minutes: publish a fresh one before then, or clients of that CA are refused", crlName(i, rl), rl.NextUpdate.UTC().Format(timeFormat), int(left.Minutes()))
}
