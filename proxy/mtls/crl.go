package mtls

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"
	"sync"
	"time"
)

var (
	oidAKI             = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidIDP             = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidKeyUsage        = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidCertIssuerEntry = asn1.ObjectIdentifier{2, 5, 29, 29}
)

// crl is one parsed CRL, reduced to what verification needs. The revoked
// serials live in a packed hash set (serialSet), so a lookup costs the same
// for 10 or 10^6 entries; the parsed entry list is dropped after indexing.
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
	// selected (unhandled critical extension, indirect or partitioned CRL).
	unusable string
	onlyUser bool
	onlyCA   bool
	dpURIs   []string // IDP distributionPoint fullName URIs
	hasDP    bool
	list     *x509.RevocationList // signature material only (it keeps the DER: RawTBSRevocationList)

	mu    sync.Mutex
	sigOK map[[32]byte]bool // issuer SPKI hash -> signature verifies
}

// serialKey is the index key of a serial number: sign and magnitude bytes
// (see appendSerialKey).
func serialKey(n *big.Int) string { return string(appendSerialKey(nil, n)) }

type issuingDistributionPoint struct {
	DistributionPoint asn1.RawValue  `asn1:"optional,tag:0"`
	OnlyUser          bool           `asn1:"optional,tag:1"`
	OnlyCA            bool           `asn1:"optional,tag:2"`
	OnlySomeReasons   asn1.BitString `asn1:"optional,tag:3"`
	Indirect          bool           `asn1:"optional,tag:4"`
	OnlyAttr          bool           `asn1:"optional,tag:5"`
}

// newCRL parses and indexes one DER CRL.
func newCRL(der []byte) (*crl, error) {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, err
	}
	c := &crl{
		rawIssuer:    rl.RawIssuer,
		issuerName:   rfc2253(rl.RawIssuer),
		issuerString: rl.Issuer.String(),
		entries:      len(rl.RevokedCertificateEntries),
		thisUpdate:   rl.ThisUpdate,
		nextUpdate:   rl.NextUpdate,
		sigOK:        map[[32]byte]bool{},
	}
	if rl.Number != nil {
		c.number = rl.Number.String()
	}
	for _, ext := range rl.Extensions {
		switch {
		case ext.Id.Equal(oidIDP):
			if err := c.parseIDP(ext.Value); err != nil {
				c.unusable = "malformed issuing distribution point: " + err.Error()
			}
		case ext.Id.Equal(oidAKI):
		case ext.Critical && c.unusable == "":
			// BoringSSL handles only IDP and AKI as critical CRL extensions;
			// a critical CRL number or delta indicator makes the CRL unusable.
			c.unusable = fmt.Sprintf("unhandled critical CRL extension %s", ext.Id)
		}
	}
	serials := make([]*big.Int, 0, len(rl.RevokedCertificateEntries))
	for _, e := range rl.RevokedCertificateEntries {
		for _, ext := range e.Extensions {
			if ext.Critical && c.unusable == "" {
				c.unusable = fmt.Sprintf("unhandled critical CRL entry extension %s", ext.Id)
				if ext.Id.Equal(oidCertIssuerEntry) {
					c.unusable = "indirect CRL entries are not supported"
				}
			}
		}
		serials = append(serials, e.SerialNumber)
	}
	c.revoked = newSerialSet(serials)
	rl.RevokedCertificateEntries = nil
	//lint:ignore SA1019 drop the deprecated mirror of the entries too
	rl.RevokedCertificates = nil
	c.list = rl
	return c, nil
}

func (c *crl) parseIDP(der []byte) error {
	var idp issuingDistributionPoint
	if rest, err := asn1.Unmarshal(der, &idp); err != nil || len(rest) != 0 {
		if err == nil {
			err = fmt.Errorf("trailing data")
		}
		return err
	}
	c.onlyUser, c.onlyCA = idp.OnlyUser, idp.OnlyCA
	switch {
	case idp.Indirect:
		c.unusable = "indirect CRLs are not supported"
	case idp.OnlyAttr:
		c.unusable = "attribute-certificate CRLs do not cover certificates"
	case idp.OnlySomeReasons.BitLength > 0:
		c.unusable = "CRLs partitioned by reason are not supported"
	}
	if len(idp.DistributionPoint.FullBytes) == 0 {
		return nil
	}
	c.hasDP = true
	// distributionPoint [0] DistributionPointName; fullName [0] GeneralNames.
	var dpn asn1.RawValue
	if _, err := asn1.Unmarshal(idp.DistributionPoint.Bytes, &dpn); err != nil {
		return err
	}
	if dpn.Class != asn1.ClassContextSpecific || dpn.Tag != 0 {
		return nil // nameRelativeToCRLIssuer: matches no certificate DP URI
	}
	seq := append([]byte{0x30}, dpn.FullBytes[1:]...)
	for _, gn := range parseGeneralNames(seq) {
		if gn.tag == genURI {
			c.dpURIs = append(c.dpURIs, gn.value)
		}
	}
	return nil
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
func (c *crl) signedBy(issuer *x509.Certificate) bool {
	key := sha256.Sum256(issuer.RawSubjectPublicKeyInfo)
	c.mu.Lock()
	ok, seen := c.sigOK[key]
	c.mu.Unlock()
	if seen {
		return ok
	}
	ok = bytes.Equal(c.rawIssuer, issuer.RawSubject) &&
		issuer.CheckSignature(c.list.SignatureAlgorithm, c.list.RawTBSRevocationList, c.list.Signature) == nil
	c.mu.Lock()
	c.sigOK[key] = ok
	c.mu.Unlock()
	return ok
}

func (c *crl) timeValid(now time.Time) bool {
	return !now.Before(c.thisUpdate) && (c.nextUpdate.IsZero() || !now.After(c.nextUpdate))
}

// crlStore indexes CRLs by the DER issuer name they were issued under.
type crlStore struct {
	byIssuer map[string][]*crl
	count    int
}

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
