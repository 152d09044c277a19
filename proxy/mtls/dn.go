package mtls

import (
	"encoding/asn1"
	"encoding/hex"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// rfc2253 renders a DER Name exactly as BoringSSL's
// X509_NAME_print_ex(XN_FLAG_RFC2253) does, which is what Envoy puts in XFCC
// Subject and %DOWNSTREAM_PEER_SUBJECT%/_ISSUER%:
//   - entries in reverse order (XN_FLAG_DN_REV reverses the flat entry list,
//     so a multi-valued RDN is reversed too), "," between RDNs, "+" within;
//   - OpenSSL short names (CN, O, emailAddress...); an attribute type with no
//     name is printed as its dotted OID and its value dumped as #<DER hex>;
//   - string values converted to UTF-8 with every byte >= 0x80 and every
//     control byte escaped as \XX, \ and " always escaped, , + < > ; escaped,
//     and # or space escaped at the start, space at the end;
//   - values of non-string types dumped as #<DER hex>.
//
// When a value cannot be decoded (invalid UTF-8, odd BMPString), BoringSSL
// stops and Envoy keeps what was written: the output ends after "TYPE=".
func rfc2253(rawName []byte) string {
	var rdns []rdnSET
	rest, err := asn1.Unmarshal(rawName, &rdns)
	if err != nil || len(rest) != 0 {
		return ""
	}
	type entry struct {
		atv attrTypeValue
		set int
	}
	var flat []entry
	for i, r := range rdns {
		for _, a := range r {
			flat = append(flat, entry{a, i})
		}
	}
	var b strings.Builder
	prev := -1
	for i := len(flat) - 1; i >= 0; i-- {
		e := flat[i]
		if prev != -1 {
			if prev == e.set {
				b.WriteByte('+')
			} else {
				b.WriteByte(',')
			}
		}
		prev = e.set
		name, known := attrShortNames[e.atv.Type.String()]
		if !known {
			name = e.atv.Type.String()
		}
		b.WriteString(name)
		b.WriteByte('=')
		if !known {
			dumpDER(&b, e.atv.Value.FullBytes)
			continue
		}
		if !writeValue(&b, e.atv.Value) {
			return b.String()
		}
	}
	return b.String()
}

type attrTypeValue struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// rdnSET: encoding/asn1 treats a slice type whose name ends in SET as SET OF.
type rdnSET []attrTypeValue

func dumpDER(b *strings.Builder, der []byte) {
	b.WriteByte('#')
	b.WriteString(strings.ToUpper(hex.EncodeToString(der)))
}

// writeValue prints one attribute value; false means it could not be decoded.
func writeValue(b *strings.Builder, v asn1.RawValue) bool {
	if v.Class != asn1.ClassUniversal || v.IsCompound {
		dumpDER(b, v.FullBytes)
		return true
	}
	var runes []rune
	switch v.Tag {
	case asn1.TagUTF8String:
		s := v.Bytes
		for len(s) > 0 {
			r, n := utf8.DecodeRune(s)
			if r == utf8.RuneError && n <= 1 {
				return false
			}
			runes = append(runes, r)
			s = s[n:]
		}
	case asn1.TagNumericString, asn1.TagPrintableString, asn1.TagT61String, asn1.TagIA5String,
		asn1.TagUTCTime, asn1.TagGeneralizedTime, 26 /* VisibleString */ :
		// BoringSSL reads these as Latin-1.
		for _, c := range v.Bytes {
			runes = append(runes, rune(c))
		}
	case 28: // UniversalString, UTF-32BE
		if len(v.Bytes)%4 != 0 {
			return false
		}
		for i := 0; i < len(v.Bytes); i += 4 {
			r := rune(uint32(v.Bytes[i])<<24 | uint32(v.Bytes[i+1])<<16 | uint32(v.Bytes[i+2])<<8 | uint32(v.Bytes[i+3]))
			if !utf8.ValidRune(r) {
				return false
			}
			runes = append(runes, r)
		}
	case asn1.TagBMPString: // UCS-2BE, surrogates refused
		if len(v.Bytes)%2 != 0 {
			return false
		}
		for i := 0; i < len(v.Bytes); i += 2 {
			r := rune(uint16(v.Bytes[i])<<8 | uint16(v.Bytes[i+1]))
			if utf16.IsSurrogate(r) {
				return false
			}
			runes = append(runes, r)
		}
	default:
		dumpDER(b, v.FullBytes)
		return true
	}
	for i, r := range runes {
		var buf [utf8.UTFMax]byte
		n := utf8.EncodeRune(buf[:], r)
		for j := 0; j < n; j++ {
			escapeByte(b, buf[j], i == 0 && j == 0, i == len(runes)-1 && j == n-1)
		}
	}
	return true
}

const hexUpper = "0123456789ABCDEF"

// escapeByte is BoringSSL's do_esc_char with ESC_2253|ESC_CTRL|ESC_MSB.
func escapeByte(b *strings.Builder, c byte, first, last bool) {
	switch {
	case c > 0x7f || c < 0x20 || c == 0x7f:
		b.WriteByte('\\')
		b.WriteByte(hexUpper[c>>4])
		b.WriteByte(hexUpper[c&0xf])
	case c == '\\' || c == '"' || c == ',' || c == '+' || c == '<' || c == '>' || c == ';' ||
		(first && (c == ' ' || c == '#')) || (last && c == ' '):
		b.WriteByte('\\')
		b.WriteByte(c)
	default:
		b.WriteByte(c)
	}
}

// attrShortNames are BoringSSL's short names (OBJ_nid2sn) for the attribute
// types that appear in certificate names.
var attrShortNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.4":                    "SN",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "street",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.12":                   "title",
	"2.5.4.13":                   "description",
	"2.5.4.14":                   "searchGuide",
	"2.5.4.15":                   "businessCategory",
	"2.5.4.16":                   "postalAddress",
	"2.5.4.17":                   "postalCode",
	"2.5.4.18":                   "postOfficeBox",
	"2.5.4.19":                   "physicalDeliveryOfficeName",
	"2.5.4.20":                   "telephoneNumber",
	"2.5.4.21":                   "telexNumber",
	"2.5.4.22":                   "teletexTerminalIdentifier",
	"2.5.4.23":                   "facsimileTelephoneNumber",
	"2.5.4.24":                   "x121Address",
	"2.5.4.25":                   "internationaliSDNNumber",
	"2.5.4.26":                   "registeredAddress",
	"2.5.4.27":                   "destinationIndicator",
	"2.5.4.28":                   "preferredDeliveryMethod",
	"2.5.4.29":                   "presentationAddress",
	"2.5.4.30":                   "supportedApplicationContext",
	"2.5.4.31":                   "member",
	"2.5.4.32":                   "owner",
	"2.5.4.33":                   "roleOccupant",
	"2.5.4.34":                   "seeAlso",
	"2.5.4.35":                   "userPassword",
	"2.5.4.36":                   "userCertificate",
	"2.5.4.37":                   "cACertificate",
	"2.5.4.38":                   "authorityRevocationList",
	"2.5.4.39":                   "certificateRevocationList",
	"2.5.4.40":                   "crossCertificatePair",
	"2.5.4.41":                   "name",
	"2.5.4.42":                   "GN",
	"2.5.4.43":                   "initials",
	"2.5.4.44":                   "generationQualifier",
	"2.5.4.45":                   "x500UniqueIdentifier",
	"2.5.4.46":                   "dnQualifier",
	"2.5.4.47":                   "enhancedSearchGuide",
	"2.5.4.48":                   "protocolInformation",
	"2.5.4.49":                   "distinguishedName",
	"2.5.4.50":                   "uniqueMember",
	"2.5.4.51":                   "houseIdentifier",
	"2.5.4.52":                   "supportedAlgorithms",
	"2.5.4.53":                   "deltaRevocationList",
	"2.5.4.54":                   "dmdName",
	"2.5.4.65":                   "pseudonym",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"1.2.840.113549.1.9.2":       "unstructuredName",
	"0.9.2342.19200300.100.1.1":  "UID",
	"0.9.2342.19200300.100.1.25": "DC",
}
