package crl

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CRL extension OIDs (RFC 5280 5.2).
var (
	oidAKI       = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDelta     = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIDP       = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidFreshest  = asn1.ObjectIdentifier{2, 5, 29, 46}
)

// readExtensions reads the optional [0] EXPLICIT Extensions of TBSCertList.
func (s *Summary) readExtensions(tbs *cryptobyte.String) error {
	var wrapped, exts cryptobyte.String
	var present bool
	if !tbs.ReadOptionalASN1(&wrapped, &present, tagCtx0C) {
		return errors.New("crl: malformed extensions")
	}
	if !present {
		return nil
	}
	if !wrapped.ReadASN1(&exts, cbasn1.SEQUENCE) {
		return errors.New("crl: malformed extensions")
	}
	if !wrapped.Empty() {
		return fmt.Errorf("crl: extensions: %w", ErrTrailingData)
	}
	if exts.Empty() {
		return fmt.Errorf("crl: %w", ErrEmptyExtensions)
	}
	var seen []asn1.ObjectIdentifier
	for !exts.Empty() {
		var ext, val cryptobyte.String
		var oid asn1.ObjectIdentifier
		critical := false
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&oid) {
			return errors.New("crl: malformed extension")
		}
		if ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical) {
			return fmt.Errorf("crl: extension %s: malformed critical field", oid)
		}
		if !ext.ReadASN1(&val, cbasn1.OCTET_STRING) {
			return fmt.Errorf("crl: extension %s: malformed value field", oid)
		}
		if !ext.Empty() {
			return fmt.Errorf("crl: extension %s: %w", oid, ErrTrailingData)
		}
		for _, o := range seen {
			if o.Equal(oid) {
				return fmt.Errorf("crl: %w %s", ErrDuplicateExtension, oid)
			}
		}
		seen = append(seen, oid)
		if err := s.extension(oid, critical, val); err != nil {
			return fmt.Errorf("crl: extension %s: %w", oid, err)
		}
	}
	return nil
}

// extension records one CRL extension. A critical extension BoringSSL does
// not handle (x_crl.cc crl_cb: all but IDP and AKI) lands in s.Critical.
func (s *Summary) extension(oid asn1.ObjectIdentifier, critical bool, val cryptobyte.String) error {
	switch {
	case oid.Equal(oidAKI):
		if critical {
			// x509's parseAuthorityKeyIdentifier refuses it (RFC 5280
			// 4.2.1.1: MUST be non-critical); BoringSSL would accept it.
			return errors.New("authority key identifier incorrectly marked critical")
		}
		return s.readAKI(val)
	case oid.Equal(oidIDP):
		idp, err := readIDP(val)
		if err != nil {
			return err
		}
		idp.Critical = critical
		s.IDP = idp
		return nil
	case oid.Equal(oidCRLNumber):
		s.Number = new(big.Int)
		if !val.ReadASN1Integer(s.Number) {
			return errors.New("malformed CRL number")
		}
		if !val.Empty() {
			return ErrTrailingData
		}
	case oid.Equal(oidDelta):
		s.Delta = true
	case oid.Equal(oidFreshest):
		s.Freshest = true
	}
	if critical {
		s.Critical = append(s.Critical, oid)
	}
	return nil
}

// readAKI reads AuthorityKeyIdentifier (RFC 5280 4.2.1.1): keyIdentifier
// [0], authorityCertIssuer [1] GeneralNames, authorityCertSerialNumber [2].
func (s *Summary) readAKI(val cryptobyte.String) error {
	var aki cryptobyte.String
	if !val.ReadASN1(&aki, cbasn1.SEQUENCE) {
		return errors.New("invalid authority key identifier")
	}
	if !val.Empty() {
		return fmt.Errorf("authority key identifier: %w", ErrTrailingData)
	}
	var keyID, names, serial cryptobyte.String
	var hasKeyID, hasNames, hasSerial bool
	if !aki.ReadOptionalASN1(&keyID, &hasKeyID, tagCtx0) ||
		!aki.ReadOptionalASN1(&names, &hasNames, tagCtx1C) ||
		!aki.ReadOptionalASN1(&serial, &hasSerial, cbasn1.Tag(2).ContextSpecific()) ||
		!aki.Empty() || hasSerial && !validInteger(serial) {
		return fmt.Errorf("%w: authority key identifier", ErrExtensionSyntax)
	}
	if hasKeyID {
		s.AuthorityKeyID = append([]byte{}, keyID...)
	}
	if hasSerial {
		s.AuthorityCertSerial = append([]byte(nil), serial...)
	}
	if hasNames {
		err := walkGeneralNames(names, func(tag cbasn1.Tag, content []byte) {
			if tag == tagDirectoryName && s.AuthorityCertIssuer == nil {
				s.AuthorityCertIssuer = append([]byte(nil), content...)
			}
		})
		if err != nil {
			return fmt.Errorf("%w: authority key identifier: %w", ErrExtensionSyntax, err)
		}
	}
	return nil
}

// readIDP reads IssuingDistributionPoint (RFC 5280 5.2.5).
func readIDP(val cryptobyte.String) (*IDP, error) {
	idp := &IDP{}
	var seq cryptobyte.String
	if !val.ReadASN1(&seq, cbasn1.SEQUENCE) || !val.Empty() {
		return nil, fmt.Errorf("%w: issuing distribution point", ErrExtensionSyntax)
	}
	if seq.PeekASN1Tag(tagCtx0C) {
		if err := idp.readDistributionPoint(&seq); err != nil {
			return nil, fmt.Errorf("%w: issuing distribution point: %w", ErrExtensionSyntax, err)
		}
	}
	var reasons cryptobyte.String
	ok := readImplicitBool(&seq, cbasn1.Tag(1).ContextSpecific(), &idp.OnlyUser) &&
		readImplicitBool(&seq, cbasn1.Tag(2).ContextSpecific(), &idp.OnlyCA) &&
		seq.ReadOptionalASN1(&reasons, &idp.OnlySomeReasons, cbasn1.Tag(3).ContextSpecific()) &&
		(!idp.OnlySomeReasons || validBitString(reasons)) &&
		readImplicitBool(&seq, cbasn1.Tag(4).ContextSpecific(), &idp.Indirect) &&
		readImplicitBool(&seq, cbasn1.Tag(5).ContextSpecific(), &idp.OnlyAttr) &&
		seq.Empty()
	if !ok {
		return nil, fmt.Errorf("%w: issuing distribution point", ErrExtensionSyntax)
	}
	return idp, nil
}

// readDistributionPoint reads distributionPoint [0] EXPLICIT
// DistributionPointName: fullName [0] GeneralNames or
// nameRelativeToCRLIssuer [1] RelativeDistinguishedName.
func (idp *IDP) readDistributionPoint(seq *cryptobyte.String) error {
	var dp, name cryptobyte.String
	var tag cbasn1.Tag
	if !seq.ReadASN1(&dp, tagCtx0C) || !dp.ReadAnyASN1Element(&name, &tag) || !dp.Empty() {
		return errors.New("malformed distributionPoint")
	}
	idp.DistributionPoint = append([]byte(nil), name...)
	var content cryptobyte.String
	name.ReadAnyASN1(&content, &tag)
	switch tag {
	case tagCtx0C:
		return walkGeneralNames(content, func(tag cbasn1.Tag, v []byte) {
			if tag == tagURI {
				idp.URIs = append(idp.URIs, string(v))
			}
		})
	case tagCtx1C:
		return nil
	}
	return fmt.Errorf("unknown DistributionPointName tag %#x", uint8(tag))
}

// GeneralName tags (RFC 5280 4.2.1.6), with the constructed bit each must
// carry.
var (
	tagDirectoryName = cbasn1.Tag(4).ContextSpecific().Constructed()
	tagURI           = cbasn1.Tag(6).ContextSpecific()
)

var generalNameTags = map[cbasn1.Tag]bool{
	cbasn1.Tag(0).ContextSpecific().Constructed(): true, // otherName
	cbasn1.Tag(1).ContextSpecific():               true, // rfc822Name
	cbasn1.Tag(2).ContextSpecific():               true, // dNSName
	cbasn1.Tag(3).ContextSpecific().Constructed(): true, // x400Address
	tagDirectoryName:                              true,
	cbasn1.Tag(5).ContextSpecific().Constructed(): true, // ediPartyName
	tagURI:                          true,
	cbasn1.Tag(7).ContextSpecific(): true, // iPAddress
	cbasn1.Tag(8).ContextSpecific(): true, // registeredID
}

// walkGeneralNames checks the content of a GeneralNames and calls fn with
// each name's tag and content (for a directoryName, the Name's DER).
func walkGeneralNames(names cryptobyte.String, fn func(cbasn1.Tag, []byte)) error {
	for !names.Empty() {
		var v cryptobyte.String
		var tag cbasn1.Tag
		if !names.ReadAnyASN1(&v, &tag) || !generalNameTags[tag] {
			return errors.New("malformed GeneralName")
		}
		if tag == tagDirectoryName {
			var name cryptobyte.String
			if !v.ReadASN1Element(&name, cbasn1.SEQUENCE) || !v.Empty() {
				return errors.New("malformed directoryName")
			}
			v = name
		}
		fn(tag, v)
	}
	return nil
}
