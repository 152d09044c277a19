package mtls

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	crlparse "github.com/certplane/certplane/crl"
)

var oidKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

// crl is one parsed CRL, reduced to what verification needs. The revoked
// serials live in a packed hash set (serialSet), so a lookup costs the same
// for 10 or 10^6 entries; the entries are never materialised: the streaming
// parser (package crl) hands each serial to the index.
type crl struct {
	rawIssuer    []byte
	issuerName   string // RFC 2253, for messages
	issuerString string // pkix.Name.String form, for status (CRLInfo)
	number       string // CRL number, decimal; "" when absent
	entries      int    // revoked entries listed (duplicates counted)
	thisUpdate   time.Time
	nextUpdate   time.Time // zero: none
	revoked      *serialSet
	// unusable, when set, says why BoringSSL would refuse this CRL once
	// selected (crl.Summary.Usable: the admission rule config applies too).
	unusable string
	onlyUser bool
	onlyCA   bool
	dpURIs   []string // IDP distributionPoint fullName URIs
	hasDP    bool

	mu sync.Mutex
	// sum holds the signature material (it aliases the DER) until settle
	// has checked it against every trusted CA of the issuer's name.
	sum   *crlparse.Summary
	sigOK map[[32]byte]bool // issuer SPKI hash -> signature verifies
}

// newCRL parses and indexes one DER CRL in two streaming walks: the first
// checks it and sizes the index, the second fills it. No x509.RevocationList
// is built: the transient peak is the DER and the index.
func newCRL(der []byte) (*crl, error) {
	keyBytes := 0
	s, err := crlparse.Parse(der, func(e crlparse.Entry) error {
		keyBytes += len(e.Serial) + 1
		return nil
	})
	if err != nil {
		return nil, err
	}
	set := newSerialSetSized(s.Entries)
	set.blob = make([]byte, 0, keyBytes)
	if _, err := crlparse.Parse(der, func(e crlparse.Entry) error {
		set.add(e.Serial)
		return nil
	}); err != nil {
		return nil, err
	}
	c := &crl{
		rawIssuer:    s.RawIssuer,
		issuerName:   rfc2253(s.RawIssuer),
		issuerString: s.Issuer,
		entries:      s.Entries,
		thisUpdate:   s.ThisUpdate,
		nextUpdate:   s.NextUpdate,
		revoked:      set,
		sum:          s,
		sigOK:        map[[32]byte]bool{},
	}
	if s.Number != nil {
		c.number = s.Number.String()
	}
	if err := s.Usable(); err != nil {
		c.unusable = err.Error()
	}
	if idp := s.IDP; idp != nil {
		c.onlyUser, c.onlyCA = idp.OnlyUser, idp.OnlyCA
		// nameRelativeToCRLIssuer gives no URI: it matches no certificate
		// distribution point.
		c.hasDP, c.dpURIs = idp.DistributionPoint != nil, idp.URIs
	}
	return c, nil
}

// isRevoked is the O(1) lookup.
func (c *crl) isRevoked(serial *big.Int) bool {
	return c.revoked.contains(serial)
}

// covers reports whether the CRL's scope includes cert (BoringSSL
// crl_crldp_check): onlyUser/onlyCA, and a distribution point name that must
// match one of the certificate's CRL distribution points.
func (c *crl) covers(cert *x509.Certificate) bool {
	if cert.IsCA && c.onlyUser || !cert.IsCA && c.onlyCA {
		return false
	}
	if !c.hasDP {
		return true
	}
	for _, want := range c.dpURIs {
		for _, have := range cert.CRLDistributionPoints {
			if want == have {
				return true
			}
		}
	}
	return false
}

// signedBy checks the CRL signature against issuer, once per issuer key.
// Once settled, only the keys checked then are known: any other key fails,
// closed.
func (c *crl) signedBy(issuer *x509.Certificate) bool {
	key := sha256.Sum256(issuer.RawSubjectPublicKeyInfo)
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok, seen := c.sigOK[key]; seen {
		return ok
	}
	if c.sum == nil {
		return false
	}
	ok := c.signatureFrom(issuer)
	c.sigOK[key] = ok
	return ok
}

// signatureFrom is the name and signature check alone: whether the issuer
// may sign CRLs is checkCert's, so that a CA without cRLSign fails as
// BoringSSL fails it (KEYUSAGE_NO_CRL_SIGN), not as a missing CRL.
func (c *crl) signatureFrom(issuer *x509.Certificate) bool {
	s := c.sum
	return bytes.Equal(c.rawIssuer, issuer.RawSubject) &&
		issuer.CheckSignature(s.SignatureAlgorithm, s.RawTBSRevocationList, s.Signature) == nil
}

// settle admits the CRL against cas, the trusted CAs named as its issuer,
// with crl.Admit, the rule config admits CRLs with: it fails when none of
// them issued it (name, authority key identifier, signature). A CA that
// signed it but may not sign CRLs (not a CA, no cRLSign) is left to the
// handshake, which fails closed as BoringSSL does. settle then records
// each CA's signature verdict and drops the signature material, so that
// the CRL no longer pins its DER.
func (c *crl) settle(cas []*x509.Certificate, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sum == nil {
		return nil // settled by another verifier of the same secret
	}
	_, _, err := crlparse.Admit(c.sum, cas, now)
	if err != nil && !errors.Is(err, crlparse.ErrNotCA) && !errors.Is(err, crlparse.ErrNoCRLSign) && errors.Is(err, crlparse.ErrNoIssuer) {
		return err
	}
	for _, ca := range cas {
		key := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
		if _, seen := c.sigOK[key]; !seen {
			c.sigOK[key] = c.signatureFrom(ca)
		}
	}
	c.sum = nil
	return nil
}

func (c *crl) timeValid(now time.Time) bool {
	return !now.Before(c.thisUpdate) && (c.nextUpdate.IsZero() || !now.After(c.nextUpdate))
}

// crlStore indexes CRLs by the DER issuer name they were issued under.
type crlStore struct {
	byIssuer map[string][]*crl
	count    int
}

// snapshot and restore undo the adds of a walk that starts over.
func (s *crlStore) snapshot() crlStore {
	out := crlStore{count: s.count, byIssuer: map[string][]*crl{}}
	for k, v := range s.byIssuer {
		out.byIssuer[k] = v[:len(v):len(v)]
	}
	return out
}

func (s *crlStore) restore(to crlStore) { *s = to }

func (s *crlStore) add(c *crl) {
	if s.byIssuer == nil {
		s.byIssuer = map[string][]*crl{}
	}
	s.byIssuer[string(c.rawIssuer)] = append(s.byIssuer[string(c.rawIssuer)], c)
	s.count++
}

// checkCert is BoringSSL's check_cert for one certificate of the path: pick
// the CRL of cert's issuer (in scope, signed by issuer, time-valid preferred,
// then the newest), then refuse it when unusable or out of date, refuse an
// issuer without cRLSign, and look the serial up.
func (s *crlStore) checkCert(cert, issuer *x509.Certificate, now time.Time, checkTime bool) *Failure {
	var best *crl
	bestTimeOK := false
	for _, c := range s.byIssuer[string(cert.RawIssuer)] {
		if !c.covers(cert) || !c.signedBy(issuer) {
			continue
		}
		tok := !checkTime || c.timeValid(now)
		switch {
		case best == nil, tok && !bestTimeOK:
		case tok == bestTimeOK && c.thisUpdate.After(best.thisUpdate):
		default:
			continue
		}
		best, bestTimeOK = c, tok
	}
	subject := rfc2253(cert.RawSubject)
	if best == nil {
		return fail(ReasonCRLMissing, fmt.Errorf("no CRL from issuer %q covers %q", rfc2253(cert.RawIssuer), subject))
	}
	if best.unusable != "" {
		return fail(ReasonCRLMissing, fmt.Errorf("CRL of %q is unusable: %s", best.issuerName, best.unusable))
	}
	if !bestTimeOK {
		if now.Before(best.thisUpdate) {
			return fail(ReasonCRLExpired, fmt.Errorf("CRL of %q is not valid before %s", best.issuerName, best.thisUpdate.UTC().Format(time.RFC3339)))
		}
		return fail(ReasonCRLExpired, fmt.Errorf("CRL of %q expired at %s", best.issuerName, best.nextUpdate.UTC().Format(time.RFC3339)))
	}
	if hasExtension(issuer, oidKeyUsage) && issuer.KeyUsage&x509.KeyUsageCRLSign == 0 {
		// X509_V_ERR_KEYUSAGE_NO_CRL_SIGN: certificate_unknown.
		return failAlert(ReasonBadKeyUsage, AlertCertificateUnknown, fmt.Errorf("CRL issuer %q lacks the cRLSign key usage", best.issuerName))
	}
	if best.isRevoked(cert.SerialNumber) {
		return fail(ReasonRevoked, fmt.Errorf("certificate %q serial %s is revoked by the CRL of %q", subject, serialHex(cert.SerialNumber), best.issuerName))
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
