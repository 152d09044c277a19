package crl

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// Why an issuer cannot vouch for a CRL. Admit wraps them with the CA's name.
var (
	ErrIssuerName  = errors.New("CA subject is not the CRL issuer")
	ErrAKIMismatch = errors.New("CRL authority key identifier does not match the CA")
	ErrSignature   = errors.New("CRL signature does not verify with the CA's key")
	ErrNotCA       = errors.New("CA certificate is not a CA (basicConstraints)")
	ErrNoCRLSign   = errors.New("CA key usage lacks cRLSign")
	ErrReleased    = errors.New("CRL summary released its signed bytes")
)

var oidKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

// CheckSignatureFrom reports whether ca issued the CRL: ca's subject is
// the CRL issuer byte for byte, the signature over the TBS bytes verifies
// with ca's key, ca is a CA, and its key usage, when the extension is
// present, includes cRLSign. The checks are x509's
// RevocationList.CheckSignatureFrom plus the name match (BoringSSL's
// get_crl_score) and BoringSSL's key usage rule (check_crl: the extension's
// presence decides, where x509 looks at the decoded bits only).
func (s *Summary) CheckSignatureFrom(ca *x509.Certificate) error {
	if s.RawTBSRevocationList == nil {
		return ErrReleased
	}
	if !bytes.Equal(s.RawIssuer, ca.RawSubject) {
		return ErrIssuerName
	}
	if ca.PublicKeyAlgorithm == x509.UnknownPublicKeyAlgorithm {
		return fmt.Errorf("%w: %w", ErrSignature, x509.ErrUnsupportedAlgorithm)
	}
	if err := ca.CheckSignature(s.SignatureAlgorithm, s.RawTBSRevocationList, s.Signature); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	if ca.Version == 3 && !ca.BasicConstraintsValid || ca.BasicConstraintsValid && !ca.IsCA {
		return ErrNotCA
	}
	if hasExtension(ca, oidKeyUsage) && ca.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return ErrNoCRLSign
	}
	return nil
}

// AuthorityMatches is BoringSSL's X509_check_akid for the CRL's AKI: when
// both carry one, the key identifier equals ca's subject key identifier; an
// authorityCertSerialNumber equals ca's serial; the first directoryName of
// authorityCertIssuer equals ca's issuer (byte for byte; BoringSSL compares
// canonical forms).
func (s *Summary) AuthorityMatches(ca *x509.Certificate) error {
	if s.AuthorityKeyID != nil && ca.SubjectKeyId != nil && !bytes.Equal(s.AuthorityKeyID, ca.SubjectKeyId) {
		return fmt.Errorf("%w: key identifier %x, CA subject key identifier %x", ErrAKIMismatch, s.AuthorityKeyID, ca.SubjectKeyId)
	}
	if s.AuthorityCertSerial != nil && !bytes.Equal(s.AuthorityCertSerial, AppendSerial(nil, ca.SerialNumber)) {
		return fmt.Errorf("%w: authorityCertSerialNumber differs from the CA's serial", ErrAKIMismatch)
	}
	if s.AuthorityCertIssuer != nil && !bytes.Equal(s.AuthorityCertIssuer, ca.RawIssuer) {
		return fmt.Errorf("%w: authorityCertIssuer differs from the CA's issuer", ErrAKIMismatch)
	}
	return nil
}

func hasExtension(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

// AppendSerial appends n as Entry.Serial holds serials: the content of its
// DER INTEGER (minimal two's complement). A certificate's serial is found
// in an index built from Parse's entries with this key. A nil n appends
// nothing, which no valid entry equals.
func AppendSerial(dst []byte, n *big.Int) []byte {
	switch {
	case n == nil:
		return dst
	case n.Sign() == 0:
		return append(dst, 0)
	case n.Sign() > 0:
		l := (n.BitLen() + 7) / 8
		if n.BitLen()%8 == 0 {
			dst = append(dst, 0) // the top bit is set: a 0x00 keeps it positive
		}
		return appendMagnitude(dst, n, l)
	}
	// Negative: two's complement of |n| is the bitwise NOT of |n|-1.
	m := new(big.Int).Neg(n)
	m.Sub(m, big.NewInt(1))
	l := (m.BitLen() + 7) / 8
	if m.BitLen()%8 == 0 {
		dst = append(dst, 0xff)
	}
	start := len(dst)
	dst = appendMagnitude(dst, m, l)
	for i := start; i < len(dst); i++ {
		dst[i] = ^dst[i]
	}
	return dst
}

func appendMagnitude(dst []byte, n *big.Int, l int) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, l)...)
	n.FillBytes(dst[start:])
	return dst
}
