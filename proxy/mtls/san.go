package mtls

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

var oidSAN = asn1.ObjectIdentifier{2, 5, 29, 17}

// GeneralName tags (RFC 5280 4.2.1.6).
const (
	genOtherName = 0
	genEmail     = 1
	genDNS       = 2
	genURI       = 6
	genIP        = 7
)

// generalName is one SAN as Envoy's Utility::generalNameAsString sees it.
type generalName struct {
	tag   int
	oid   asn1.ObjectIdentifier // otherName type-id
	value string
}

// subjectAltNames reads the raw SAN extension, keeping order, every type and
// the exact bytes (crypto/x509 normalises URIs and drops otherName).
func subjectAltNames(c *x509.Certificate) []generalName {
	for _, ext := range c.Extensions {
		if ext.Id.Equal(oidSAN) {
			return parseGeneralNames(ext.Value)
		}
	}
	return nil
}

func parseGeneralNames(der []byte) []generalName {
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &seq); err != nil || len(rest) != 0 || seq.Tag != asn1.TagSequence {
		return nil
	}
	var out []generalName
	b := seq.Bytes
	for len(b) > 0 {
		var gn asn1.RawValue
		rest, err := asn1.Unmarshal(b, &gn)
		if err != nil {
			return out
		}
		b = rest
		if gn.Class != asn1.ClassContextSpecific {
			continue
		}
		switch gn.Tag {
		case genEmail, genDNS, genURI:
			out = append(out, generalName{tag: gn.Tag, value: string(gn.Bytes)})
		case genIP:
			out = append(out, generalName{tag: gn.Tag, value: ipString(gn.Bytes)})
		case genOtherName:
			var on struct {
				TypeID asn1.ObjectIdentifier
				Value  asn1.RawValue `asn1:"explicit,tag:0"`
			}
			if _, err := asn1.UnmarshalWithParams(gn.FullBytes, &on, "tag:0"); err != nil {
				continue
			}
			out = append(out, generalName{tag: gn.Tag, oid: on.TypeID, value: otherNameString(on.Value)})
		}
	}
	return out
}

// ipString formats as Envoy's Address::Ip::addressAsString (inet_ntop):
// "::ffff:1.2.3.4" for IPv4-mapped, "" for a length that is neither 4 nor 16.
func ipString(b []byte) string {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b)).String()
	case 16:
		a := netip.AddrFrom16([16]byte(b))
		if a.Is4In6() {
			v4 := a.Unmap().As4()
			return fmt.Sprintf("::ffff:%d.%d.%d.%d", v4[0], v4[1], v4[2], v4[3])
		}
		return a.String()
	}
	return ""
}

// otherNameString mirrors generalNameAsString's GEN_OTHERNAME branch.
func otherNameString(v asn1.RawValue) string {
	if v.Class != asn1.ClassUniversal {
		return ""
	}
	switch v.Tag {
	case asn1.TagBoolean:
		if len(v.Bytes) == 1 && v.Bytes[0] != 0 {
			return "true"
		}
		return "false"
	case asn1.TagInteger, asn1.TagEnum:
		n := new(big.Int).SetBytes(v.Bytes)
		if len(v.Bytes) > 0 && v.Bytes[0]&0x80 != 0 {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(v.Bytes))))
		}
		return n.String()
	case asn1.TagOID:
		var oid asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(v.FullBytes, &oid); err != nil {
			return ""
		}
		return oid.String()
	case asn1.TagBMPString:
		if len(v.Bytes)%2 != 0 {
			return ""
		}
		u := make([]uint16, len(v.Bytes)/2)
		for i := range u {
			u[i] = uint16(v.Bytes[2*i])<<8 | uint16(v.Bytes[2*i+1])
		}
		return string(utf16.Decode(u))
	case 28: // UniversalString
		if len(v.Bytes)%4 != 0 {
			return ""
		}
		var sb strings.Builder
		for i := 0; i < len(v.Bytes); i += 4 {
			r := rune(uint32(v.Bytes[i])<<24 | uint32(v.Bytes[i+1])<<16 | uint32(v.Bytes[i+2])<<8 | uint32(v.Bytes[i+3]))
			if !utf8.ValidRune(r) {
				return ""
			}
			sb.WriteRune(r)
		}
		return sb.String()
	case asn1.TagNull:
		return ""
	case asn1.TagBitString, asn1.TagOctetString, asn1.TagPrintableString, asn1.TagT61String,
		asn1.TagIA5String, 27 /* GeneralString */, asn1.TagUTCTime, asn1.TagGeneralizedTime,
		26 /* VisibleString */, asn1.TagUTF8String, asn1.TagSet, asn1.TagSequence:
		if v.Tag == asn1.TagBitString && len(v.Bytes) > 0 {
			return string(v.Bytes[1:]) // ASN1_STRING of a BIT STRING holds the bits, not the unused-bits octet
		}
		return string(v.Bytes)
	}
	return ""
}

// stringMatcher is Envoy's StringMatcher.
type stringMatcher struct {
	exact, prefix, suffix, contains *string
	re                              *regexp.Regexp
	ignoreCase                      bool
}

func compileStringMatcher(m *matcherv3.StringMatcher) (*stringMatcher, error) {
	if m == nil {
		return nil, errors.New("matcher is not set")
	}
	sm := &stringMatcher{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		sm.exact = &p.Exact
	case *matcherv3.StringMatcher_Prefix:
		sm.prefix = &p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		sm.suffix = &p.Suffix
	case *matcherv3.StringMatcher_Contains:
		sm.contains = &p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile(`^(?:` + p.SafeRegex.GetRegex() + `)$`)
		if err != nil {
			return nil, fmt.Errorf("safe_regex %q: %w", p.SafeRegex.GetRegex(), err)
		}
		sm.re = re
	case *matcherv3.StringMatcher_Custom:
		return nil, errors.New("custom string matchers are not implemented")
	default:
		return nil, errors.New("string matcher has no pattern")
	}
	return sm, nil
}

func (m *stringMatcher) match(s string) bool {
	fold := func(x string) string {
		if m.ignoreCase {
			return asciiLower(x)
		}
		return x
	}
	switch {
	case m.exact != nil:
		return fold(s) == fold(*m.exact)
	case m.prefix != nil:
		return strings.HasPrefix(fold(s), fold(*m.prefix))
	case m.suffix != nil:
		return strings.HasSuffix(fold(s), fold(*m.suffix))
	case m.contains != nil:
		return strings.Contains(fold(s), fold(*m.contains))
	case m.re != nil:
		return m.re.MatchString(s)
	}
	return false
}

// sanMatcher is Envoy's StringSanMatcher.
type sanMatcher struct {
	tag int
	oid asn1.ObjectIdentifier
	m   *stringMatcher
}

func compileSANMatcher(m *tlsv3.SubjectAltNameMatcher) (*sanMatcher, error) {
	sm, err := compileStringMatcher(m.GetMatcher())
	if err != nil {
		return nil, err
	}
	out := &sanMatcher{m: sm}
	switch m.GetSanType() {
	case tlsv3.SubjectAltNameMatcher_DNS:
		out.tag = genDNS
	case tlsv3.SubjectAltNameMatcher_EMAIL:
		out.tag = genEmail
	case tlsv3.SubjectAltNameMatcher_URI:
		out.tag = genURI
	case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
		out.tag = genIP
	case tlsv3.SubjectAltNameMatcher_OTHER_NAME:
		out.tag = genOtherName
		oid, err := parseDottedOID(m.GetOid())
		if err != nil {
			return nil, fmt.Errorf("OTHER_NAME oid %q: %w", m.GetOid(), err)
		}
		out.oid = oid
	default:
		return nil, fmt.Errorf("san_type %v is not supported", m.GetSanType())
	}
	return out, nil
}

func parseDottedOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, errors.New("want a dotted OID such as 1.3.6.1.4.1.311.20.2.3")
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n := 0
		if p == "" || len(p) > 9 {
			return nil, errors.New("malformed arc")
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return nil, errors.New("malformed arc")
			}
			n = n*10 + int(c-'0')
		}
		oid[i] = n
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] >= 40) {
		return nil, errors.New("malformed first arcs")
	}
	return oid, nil
}

func (s *sanMatcher) match(gn generalName) bool {
	if gn.tag != s.tag {
		return false
	}
	if s.tag == genOtherName && !gn.oid.Equal(s.oid) {
		return false
	}
	// For DNS SANs an exact matcher follows DNS wildcard semantics.
	if s.tag == genDNS && s.m.exact != nil {
		return dnsNameMatch(*s.m.exact, gn.value)
	}
	return s.m.match(gn.value)
}

// dnsNameMatch is Envoy's Utility::dnsNameMatch: pattern may carry one
// wildcard in its left-most label (not an A-label), matching one label.
func dnsNameMatch(dnsName, pattern string) bool {
	name, pat := asciiLower(dnsName), asciiLower(pattern)
	if name == pat {
		return true
	}
	pHead, pTail, ok1 := strings.Cut(pat, ".")
	nHead, nTail, ok2 := strings.Cut(name, ".")
	if !ok1 || !ok2 {
		return false
	}
	if strings.Contains(pHead, "*") && !strings.Contains(pTail, "*") && !strings.HasPrefix(pHead, "xn--") {
		return nTail == pTail && labelWildcardMatch(nHead, pHead)
	}
	return false
}

func labelWildcardMatch(label, pattern string) bool {
	if pattern == "*" {
		return true
	}
	if strings.Count(pattern, "*") != 1 {
		return false
	}
	before, after, _ := strings.Cut(pattern, "*")
	return len(pattern) <= len(label)+1 && strings.HasPrefix(label, before) && strings.HasSuffix(label, after)
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
