package crl

import (
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Context-specific tags used by the CRL extensions.
var (
	tagCtx0  = cbasn1.Tag(0).ContextSpecific()
	tagCtx0C = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagCtx1C = cbasn1.Tag(1).ContextSpecific().Constructed()
)

// validInteger is cryptobyte's checkASN1Integer: at least one octet and
// minimal two's complement. Every INTEGER x509 reads passes it, so DER
// content bytes are canonical: equal values have equal bytes.
func validInteger(b []byte) bool {
	switch {
	case len(b) == 0:
		return false
	case len(b) == 1:
		return true
	case b[0] == 0 && b[1]&0x80 == 0, b[0] == 0xff && b[1]&0x80 == 0x80:
		return false
	}
	return true
}

// validOID is cryptobyte's ReadASN1ObjectIdentifier acceptance without the
// allocation: non-empty, every subidentifier minimal, at most five octets
// and below 2^31, the last one terminated. Entry extensions are read with
// it because a CRL can hold millions of them.
func validOID(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for len(b) > 0 {
		n, ok := base128Len(b)
		if !ok {
			return false
		}
		b = b[n:]
	}
	return true
}

// base128Len returns the octets of the subidentifier at the start of b.
func base128Len(b []byte) (int, bool) {
	ret := 0
	for i := 0; i < len(b); i++ {
		if i == 5 || ret >= 1<<(31-7) || i == 0 && b[0] == 0x80 {
			return 0, false
		}
		ret = ret<<7 | int(b[i]&0x7f)
		if b[i]&0x80 == 0 {
			return i + 1, true
		}
	}
	return 0, false
}

// readTime reads a UTCTime or GeneralizedTime exactly as x509's parseTime
// does. The RFC 5280 forms (YYMMDDHHMMSSZ, YYYYMMDDHHMMSSZ) are decoded
// without allocating; any other form goes through cryptobyte, as in x509,
// and is refused with ErrTimeForm when strict (thisUpdate and nextUpdate:
// BoringSSL's X509_cmp_time fails on them, so Envoy could not use the CRL).
func readTime(s *cryptobyte.String, strict bool) (time.Time, error) {
	var tag cbasn1.Tag
	var content cryptobyte.String
	whole := *s
	if !s.ReadAnyASN1(&content, &tag) {
		return time.Time{}, fmt.Errorf("malformed time")
	}
	switch tag {
	case cbasn1.UTCTime:
		if t, ok := rfc5280Time(content, 2); ok {
			return t, nil
		}
	case cbasn1.GeneralizedTime:
		if t, ok := rfc5280Time(content, 4); ok {
			return t, nil
		}
	default:
		return time.Time{}, fmt.Errorf("unsupported time format (tag %d)", tag)
	}
	var t time.Time
	ok := false
	if tag == cbasn1.UTCTime {
		ok = whole.ReadASN1UTCTime(&t)
	} else {
		ok = whole.ReadASN1GeneralizedTime(&t)
	}
	switch {
	case !ok:
		return time.Time{}, fmt.Errorf("malformed time %q", []byte(content))
	case strict:
		return time.Time{}, fmt.Errorf("%w: %q is not YYMMDDHHMMSSZ (UTCTime) or YYYYMMDDHHMMSSZ (GeneralizedTime)", ErrTimeForm, []byte(content))
	}
	return t, nil
}

// rfc5280Time decodes digits (yearDigits of year, then MMDDHHMMSS) and a
// final Z, with the range checks time.Parse applies; UTCTime years 50-99
// are 19xx (RFC 5280 4.1.2.5.1). ok is false for anything else, which the
// caller hands to cryptobyte to decide.
func rfc5280Time(b []byte, yearDigits int) (time.Time, bool) {
	if len(b) != yearDigits+11 || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	for _, c := range b[:len(b)-1] {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range b[i : i+n] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	year := num(0, yearDigits)
	if yearDigits == 2 {
		year += 2000
		if year >= 2050 {
			year -= 100
		}
	}
	o := yearDigits
	month, day, hour, minute, sec := num(o, 2), num(o+2, 2), num(o+4, 2), num(o+6, 2), num(o+8, 2)
	if month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC), true
}

func daysIn(m time.Month, year int) int {
	if m == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int(m-1)%7%2
}

// readImplicitBool reads an optional [n] IMPLICIT BOOLEAN DEFAULT FALSE.
func readImplicitBool(s *cryptobyte.String, tag cbasn1.Tag, out *bool) bool {
	if !s.PeekASN1Tag(tag) {
		return true
	}
	var v cryptobyte.String
	if !s.ReadASN1(&v, tag) || len(v) != 1 || v[0] != 0 && v[0] != 0xff {
		return false
	}
	*out = v[0] == 0xff
	return true
}

// validBitString applies cryptobyte's ReadASN1BitString rules to the
// content of an implicitly tagged BIT STRING.
func validBitString(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	pad, bits := b[0], b[1:]
	return pad <= 7 && (len(bits) > 0 || pad == 0) && (len(bits) == 0 || bits[len(bits)-1]&(1<<pad-1) == 0)
}
