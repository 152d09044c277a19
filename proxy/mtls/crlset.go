package mtls

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"math/big"
	"time"

	"github.com/certplane/certplane/pemder"
)

// CRLSet is the crl field of a validation context, parsed once and reduced
// to what the proxy needs: per CRL, the revoked-serial index, the issuer,
// number and update times (for status and expiry), and the signature
// material. The parsed x509.RevocationList entries (a big.Int and a struct
// per serial, about 300 bytes each) are dropped. The proxy parses a Secret's
// CRLs into one CRLSet and hands it to NewVerifier (Options.CRLs) instead of
// having every consumer parse the PEM again.
type CRLSet struct {
	// digest is the SHA-256 of the PEM it was parsed from: the PEM itself
	// is not kept (46 MB for 1,000,000 serials), so that the caller can
	// release its Secret once the set is built.
	digest [sha256.Size]byte
	crls   []*crl
}

// CRLInfo describes one CRL of a CRLSet.
type CRLInfo struct {
	Issuer     string // pkix.Name.String form, as x509.RevocationList.Issuer prints
	Number     string // decimal; "" when absent
	ThisUpdate time.Time
	NextUpdate time.Time // zero: none
	Revoked    int       // entries listed
}

// ParseCRLs parses PEM X509 CRL blocks as a validation context's crl field:
// any other block type is an error, and so is no CRL at all. Empty data is
// an empty set.
func ParseCRLs(data []byte) (*CRLSet, error) {
	s := &CRLSet{digest: sha256.Sum256(data)}
	if len(data) == 0 {
		return s, nil
	}
	err := pemder.Stream(data, func() { s.crls = nil }, func(i int, block pemder.Block) error {
		if block.Type != pemder.TypeCRL {
			return fmt.Errorf("PEM block %d has type %q; want X509 CRL", i, block.Type)
		}
		c, err := newCRL(block.DER)
		if err != nil {
			return fmt.Errorf("PEM block %d: %w", i, err)
		}
		s.crls = append(s.crls, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(s.crls) == 0 {
		return nil, fmt.Errorf("no X509 CRL PEM block")
	}
	return s, nil
}

// Digest is the SHA-256 of the PEM the set was parsed from: what tells one
// set from another (verifier reuse keys on it).
func (s *CRLSet) Digest() [sha256.Size]byte {
	if s == nil {
		return [sha256.Size]byte{}
	}
	return s.digest
}

// Info describes the set's CRLs in PEM order.
func (s *CRLSet) Info() []CRLInfo {
	if s == nil {
		return nil
	}
	out := make([]CRLInfo, 0, len(s.crls))
	for _, c := range s.crls {
		out = append(out, CRLInfo{Issuer: c.issuerString, Number: c.number, ThisUpdate: c.thisUpdate, NextUpdate: c.nextUpdate, Revoked: c.entries})
	}
	return out
}

// Len is the number of CRLs.
func (s *CRLSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.crls)
}

// Lookup finds the first CRL that issuer signed, with the checks of
// x509.RevocationList.CheckSignatureFrom (issuer is a CA allowed to sign
// CRLs, same name, valid signature), and reports its nextUpdate and whether
// serial is listed on it.
func (s *CRLSet) Lookup(issuer *x509.Certificate, serial *big.Int) (found bool, nextUpdate time.Time, revoked bool) {
	if s == nil {
		return false, time.Time{}, false
	}
	if issuer.Version == 3 && !issuer.BasicConstraintsValid || issuer.BasicConstraintsValid && !issuer.IsCA {
		return false, time.Time{}, false
	}
	if issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return false, time.Time{}, false
	}
	for _, c := range s.crls {
		if bytes.Equal(c.rawIssuer, issuer.RawSubject) && c.signedBy(issuer) {
			return true, c.nextUpdate, c.isRevoked(serial)
		}
	}
	return false, time.Time{}, false
}
