package crl

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The stricter-than-x509 parse errors. x509.ParseRevocationList accepts
// these inputs; Parse refuses them, each for a stated reason (package doc,
// "Differences from crypto/x509").
var (
	// ErrTrailingData: bytes after an element where DER allows none (after
	// the CRL, after the signature, at the end of TBSCertList, an entry, an
	// extension, an extension value or an AlgorithmIdentifier). x509 ignores
	// them, which can hide a whole extensions field.
	ErrTrailingData = errors.New("trailing data")
	// ErrDuplicateExtension: an extension listed twice, in the CRL or in an
	// entry. BoringSSL fails on a second IDP, AKI or reasonCode.
	ErrDuplicateExtension = errors.New("duplicate extension")
	// ErrEmptyExtensions: an extensions field present but empty (SIZE
	// (1..MAX)); BoringSSL refuses it.
	ErrEmptyExtensions = errors.New("empty extensions list")
	// ErrTimeForm: thisUpdate or nextUpdate not in RFC 5280 4.1.2.5 form (Z,
	// with seconds); BoringSSL cannot compare such a time.
	ErrTimeForm = errors.New("time not in RFC 5280 form")
	// ErrSignatureBits: a signature BIT STRING with unused bits; BoringSSL
	// refuses to verify it.
	ErrSignatureBits = errors.New("signature has unused bits")
	// ErrExtensionSyntax: an extension x509 does not decode (issuing
	// distribution point, most of the AKI) is malformed; BoringSSL's parser
	// fails on it.
	ErrExtensionSyntax = errors.New("malformed extension")
)

// Entry is one revokedCertificates element, as Parse hands it to visit.
type Entry struct {
	// Serial is the DER content of the serial INTEGER: minimal two's
	// complement, so equal serials have equal bytes (RFC 5280 compares the
	// integers; x509 and BoringSSL both refuse non-minimal encodings). It
	// aliases the DER given to Parse: copy it to keep it. AppendSerial
	// encodes a certificate's serial the same way for lookups.
	Serial    []byte
	RevokedAt time.Time
	Reason    int // reasonCode; -1 when absent (BoringSSL's CRL_REASON_NONE)
}

// Summary is everything certplane keeps of a CRL after parsing: no entry.
// RawTBSRevocationList and Signature alias the DER given to Parse (for
// CheckSignatureFrom); every other field is owned. Release drops the two
// aliases so a kept Summary does not pin the DER.
type Summary struct {
	RawIssuer  []byte // DER Name
	Issuer     string // pkix.Name.String form, as x509.RevocationList.Issuer prints
	Number     *big.Int
	ThisUpdate time.Time
	NextUpdate time.Time // zero: absent
	Entries    int       // revokedCertificates listed (duplicates counted)
	SHA256     [32]byte  // of the DER

	SignatureAlgorithm   x509.SignatureAlgorithm
	RawTBSRevocationList []byte
	Signature            []byte

	// Authority key identifier fields (RFC 5280 5.2.1); nil when absent.
	AuthorityKeyID      []byte
	AuthorityCertIssuer []byte // first directoryName of authorityCertIssuer, DER Name
	AuthorityCertSerial []byte // DER INTEGER content

	IDP      *IDP // issuing distribution point; nil when absent
	Delta    bool // deltaCRLIndicator present (RFC 5280 5.2.4)
	Freshest bool // freshestCRL present (RFC 5280 5.2.6)

	// Critical lists the critical CRL extensions BoringSSL does not handle
	// (all but IDP and AKI): any makes the CRL unusable.
	Critical []asn1.ObjectIdentifier
	// CriticalEntry is the first entry with a critical extension (BoringSSL
	// handles none); nil when there is none.
	CriticalEntry *CriticalEntry
}

// IDP is the issuing distribution point extension (RFC 5280 5.2.5).
type IDP struct {
	Critical        bool
	OnlyUser        bool
	OnlyCA          bool
	OnlyAttr        bool
	Indirect        bool
	OnlySomeReasons bool // present, whatever the bits
	// DistributionPoint is the DER of the DistributionPointName ([0]
	// fullName or [1] nameRelativeToCRLIssuer); nil when absent.
	DistributionPoint []byte
	// URIs are the uniformResourceIdentifier names of a fullName.
	URIs []string
}

// CriticalEntry names an entry with a critical extension.
type CriticalEntry struct {
	Index  int // 1-based
	Serial []byte
	OID    asn1.ObjectIdentifier
}

// HasNumber reports whether the CRL carries a CRL number.
func (s *Summary) HasNumber() bool { return s.Number != nil }

// Release drops RawTBSRevocationList and Signature, the slices into the
// parsed DER, once the signature is checked. CheckSignatureFrom fails
// afterwards.
func (s *Summary) Release() { s.RawTBSRevocationList, s.Signature = nil, nil }

// Parse checks der as one DER CertificateList (RFC 5280 5.1) as strictly as
// x509.ParseRevocationList does and more (the Err* values above), calls
// visit (when not nil) for every revoked entry in order, and returns the
// summary. Nothing proportional to the number of entries is allocated: the
// entries are never materialised. An error returned by visit stops the walk
// and is returned wrapped. On any error the entries already visited must be
// discarded: the CRL is not valid.
func Parse(der []byte, visit func(Entry) error) (*Summary, error) {
	s := &Summary{SHA256: sha256.Sum256(der)}
	tbs, sigAI, err := s.readOuter(der)
	if err != nil {
		return nil, err
	}
	revoked, err := s.readTBSHeader(&tbs, sigAI)
	if err != nil {
		return nil, err
	}
	if err := s.readExtensions(&tbs); err != nil {
		return nil, err
	}
	if !tbs.Empty() {
		return nil, fmt.Errorf("crl: TBSCertList: %w after the extensions", ErrTrailingData)
	}
	if err := s.walkEntries(revoked, visit); err != nil {
		return nil, err
	}
	return s, nil
}

// readOuter reads CertificateList (TBSCertList, signatureAlgorithm,
// signature) and the TBSCertList's version and signature fields. It returns
// the rest of the TBSCertList and the signature AlgorithmIdentifier DER.
func (s *Summary) readOuter(der []byte) (tbs, sigAI cryptobyte.String, err error) {
	input := cryptobyte.String(der)
	var list, tbsElem, outerAI cryptobyte.String
	if !input.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil, nil, errors.New("crl: malformed CertificateList")
	}
	if !input.Empty() {
		return nil, nil, fmt.Errorf("crl: %w after the CertificateList (%d bytes)", ErrTrailingData, len(input))
	}
	if !list.ReadASN1Element(&tbsElem, cbasn1.SEQUENCE) {
		return nil, nil, errors.New("crl: malformed TBSCertList")
	}
	if !list.ReadASN1Element(&outerAI, cbasn1.SEQUENCE) {
		return nil, nil, errors.New("crl: malformed signatureAlgorithm")
	}
	var sig asn1.BitString
	if !list.ReadASN1BitString(&sig) {
		return nil, nil, errors.New("crl: malformed signature")
	}
	if !list.Empty() {
		return nil, nil, fmt.Errorf("crl: CertificateList: %w after the signature", ErrTrailingData)
	}
	if sig.BitLength%8 != 0 {
		return nil, nil, fmt.Errorf("crl: %w (%d)", ErrSignatureBits, 8-sig.BitLength%8)
	}
	s.RawTBSRevocationList = tbsElem
	s.Signature = sig.Bytes
	tbsElem.ReadASN1(&tbs, cbasn1.SEQUENCE) // read whole above: cannot fail
	var innerAI cryptobyte.String
	if !tbs.PeekASN1Tag(cbasn1.INTEGER) {
		return nil, nil, errors.New("crl: unsupported version: v1 CRL (no version field); x509 requires v2")
	}
	var version int64
	if !tbs.ReadASN1Integer(&version) {
		return nil, nil, errors.New("crl: malformed version")
	}
	if version != 1 {
		return nil, nil, fmt.Errorf("crl: unsupported version %d; want 1 (v2)", version)
	}
	if !tbs.ReadASN1Element(&innerAI, cbasn1.SEQUENCE) {
		return nil, nil, errors.New("crl: malformed TBSCertList signature algorithm")
	}
	if !bytes.Equal(innerAI, outerAI) {
		return nil, nil, errors.New("crl: inner and outer signature algorithm identifiers don't match")
	}
	if err := checkAlgorithmIdentifier(innerAI); err != nil {
		return nil, nil, err
	}
	return tbs, innerAI, nil
}

// checkAlgorithmIdentifier: an OID and at most one parameters element.
func checkAlgorithmIdentifier(ai cryptobyte.String) error {
	var oid asn1.ObjectIdentifier
	var params cryptobyte.String
	var tag cbasn1.Tag
	ai.ReadASN1(&ai, cbasn1.SEQUENCE)
	if !ai.ReadASN1ObjectIdentifier(&oid) {
		return errors.New("crl: malformed signature algorithm OID")
	}
	if !ai.Empty() && !ai.ReadAnyASN1Element(&params, &tag) {
		return errors.New("crl: malformed signature algorithm parameters")
	}
	if !ai.Empty() {
		return fmt.Errorf("crl: signature algorithm: %w after the parameters", ErrTrailingData)
	}
	return nil
}

// readTBSHeader reads issuer, thisUpdate, nextUpdate and the
// revokedCertificates element, which it returns unread (its content, nil
// when absent) so that the extensions are checked before any entry is
// visited.
func (s *Summary) readTBSHeader(tbs *cryptobyte.String, sigAI []byte) (cryptobyte.String, error) {
	var issuer cryptobyte.String
	if !tbs.ReadASN1Element(&issuer, cbasn1.SEQUENCE) {
		return nil, errors.New("crl: malformed issuer")
	}
	if err := s.probe(sigAI, issuer); err != nil {
		return nil, err
	}
	var err error
	if s.ThisUpdate, err = readTime(tbs, true); err != nil {
		return nil, fmt.Errorf("crl: thisUpdate: %w", err)
	}
	if tbs.PeekASN1Tag(cbasn1.UTCTime) || tbs.PeekASN1Tag(cbasn1.GeneralizedTime) {
		if s.NextUpdate, err = readTime(tbs, true); err != nil {
			return nil, fmt.Errorf("crl: nextUpdate: %w", err)
		}
	}
	var revoked cryptobyte.String
	if tbs.PeekASN1Tag(cbasn1.SEQUENCE) && !tbs.ReadASN1(&revoked, cbasn1.SEQUENCE) {
		return nil, errors.New("crl: malformed revokedCertificates")
	}
	return revoked, nil
}

// probe lets x509 decode the signature algorithm and the issuer name from
// a CRL of a few hundred bytes holding only these two (and a fixed
// thisUpdate): the mapping to x509.SignatureAlgorithm (RSA-PSS parameters
// included) and the name string rules are then exactly x509's, with no
// copy of its unexported tables.
func (s *Summary) probe(sigAI, issuer []byte) error {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(1)
			b.AddBytes(sigAI)
			b.AddBytes(issuer)
			b.AddBytes(probeTime)
		})
		b.AddBytes(sigAI)
		b.AddBytes([]byte{0x03, 0x01, 0x00}) // empty BIT STRING
	})
	der, err := b.Bytes()
	if err != nil {
		return fmt.Errorf("crl: %w", err)
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return fmt.Errorf("crl: issuer or signature algorithm: %w", err)
	}
	s.SignatureAlgorithm = rl.SignatureAlgorithm
	s.RawIssuer = append([]byte(nil), issuer...)
	s.Issuer = rl.Issuer.String()
	return nil
}

// probeTime is UTCTime 000101000000Z.
var probeTime = append([]byte{0x17, 13}, "000101000000Z"...)

// walkEntries reads every revokedCertificates entry and visits it.
func (s *Summary) walkEntries(revoked cryptobyte.String, visit func(Entry) error) error {
	for i := 1; !revoked.Empty(); i++ {
		e, critical, err := readEntry(&revoked)
		if err != nil {
			return fmt.Errorf("crl: revokedCertificates entry %d: %w", i, err)
		}
		if critical != nil && s.CriticalEntry == nil {
			s.CriticalEntry = &CriticalEntry{Index: i, Serial: append([]byte(nil), e.Serial...), OID: critical}
		}
		s.Entries++
		if visit != nil {
			if err := visit(e); err != nil {
				return fmt.Errorf("crl: revokedCertificates entry %d: %w", i, err)
			}
		}
	}
	return nil
}

// oidReasonCode is 2.5.29.21 as DER content.
var oidReasonCode = []byte{0x55, 0x1d, 0x15}

// readEntry reads one entry: serial, revocationDate, optional extensions.
// critical is the OID of its first critical extension, nil if none.
func readEntry(revoked *cryptobyte.String) (e Entry, critical asn1.ObjectIdentifier, err error) {
	var entry, serial cryptobyte.String
	if !revoked.ReadASN1(&entry, cbasn1.SEQUENCE) {
		return e, nil, errors.New("malformed entry")
	}
	if !entry.ReadASN1(&serial, cbasn1.INTEGER) || !validInteger(serial) {
		return e, nil, errors.New("malformed serial number")
	}
	e.Serial, e.Reason = serial, -1
	if e.RevokedAt, err = readTime(&entry, false); err != nil {
		return e, nil, fmt.Errorf("revocationDate: %w", err)
	}
	if entry.PeekASN1Tag(cbasn1.SEQUENCE) {
		var exts cryptobyte.String
		if !entry.ReadASN1(&exts, cbasn1.SEQUENCE) {
			return e, nil, errors.New("malformed extensions")
		}
		if critical, err = readEntryExtensions(exts, &e); err != nil {
			return e, nil, err
		}
	}
	if !entry.Empty() {
		return e, nil, fmt.Errorf("%w after the entry's fields", ErrTrailingData)
	}
	return e, critical, nil
}

// readEntryExtensions checks an entry's extensions, takes its reasonCode
// and returns the OID of the first critical one (allocated only then).
func readEntryExtensions(exts cryptobyte.String, e *Entry) (critical asn1.ObjectIdentifier, err error) {
	if exts.Empty() {
		return nil, ErrEmptyExtensions
	}
	var seenBuf [4][]byte // entries rarely carry more than two extensions
	seen := seenBuf[:0]
	for !exts.Empty() {
		var ext, oid, val cryptobyte.String
		crit := false
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) || !validOID(oid) {
			return nil, errors.New("malformed extension")
		}
		if ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&crit) {
			return nil, errors.New("malformed extension critical field")
		}
		if !ext.ReadASN1(&val, cbasn1.OCTET_STRING) {
			return nil, errors.New("malformed extension value field")
		}
		if !ext.Empty() {
			return nil, fmt.Errorf("extension %s: %w", oidString(oid), ErrTrailingData)
		}
		for _, o := range seen {
			if bytes.Equal(o, oid) {
				return nil, fmt.Errorf("%w %s", ErrDuplicateExtension, oidString(oid))
			}
		}
		seen = append(seen, oid)
		if bytes.Equal(oid, oidReasonCode) {
			if !val.ReadASN1Enum(&e.Reason) {
				return nil, errors.New("malformed reasonCode extension")
			}
			if !val.Empty() {
				return nil, fmt.Errorf("reasonCode: %w", ErrTrailingData)
			}
		}
		if crit && critical == nil {
			critical = parseOID(oid)
		}
	}
	return critical, nil
}

// parseOID decodes a validOID content.
func parseOID(content []byte) asn1.ObjectIdentifier {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(content) })
	s := cryptobyte.String(b.BytesOrPanic())
	var oid asn1.ObjectIdentifier
	s.ReadASN1ObjectIdentifier(&oid)
	return oid
}

func oidString(content []byte) string {
	if !validOID(content) {
		return fmt.Sprintf("%x", content)
	}
	return parseOID(content).String()
}
