package crl

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// stricter names the documented class of a CRL that x509.ParseRevocationList
// accepts and Parse refuses, or "" when the refusal is not documented
// (package doc, "Differences from crypto/x509").
func stricter(err error) string {
	for _, class := range []error{ErrTrailingData, ErrDuplicateExtension, ErrEmptyExtensions, ErrTimeForm, ErrSignatureBits, ErrExtensionSyntax} {
		if errors.Is(err, class) {
			return class.Error()
		}
	}
	return ""
}

// laxer names the documented class of a CRL that Parse accepts and x509
// refuses. There is none: Parse accepts a subset of what x509 accepts.
func laxer(error) string { return "" }

// crossCheck parses der with Parse and x509.ParseRevocationList and
// reports how they disagree: "" when they agree (both refuse, or both
// accept with the same issuer, number, dates, signature material, entries
// and extension flags), or when they differ in a documented way.
func crossCheck(der []byte) string {
	rl, xerr := x509.ParseRevocationList(der)
	s, entries, perr := collect(der)
	switch {
	case xerr != nil && perr != nil:
		return ""
	case xerr == nil && perr != nil:
		if stricter(perr) != "" {
			return ""
		}
		return fmt.Sprintf("Parse refuses what x509 accepts, undocumented: %v", perr)
	case xerr != nil:
		if laxer(xerr) != "" {
			return ""
		}
		return fmt.Sprintf("Parse accepts what x509 refuses (%v)", xerr)
	}
	if d := compareSummary(s, rl); d != "" {
		return d
	}
	return compareEntries(s, entries, rl)
}

func compareSummary(s *Summary, rl *x509.RevocationList) string {
	var diffs []string
	check := func(ok bool, what string, got, want any) {
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: Parse %v, x509 %v", what, got, want))
		}
	}
	check(bytes.Equal(s.RawIssuer, rl.RawIssuer), "RawIssuer", s.RawIssuer, rl.RawIssuer)
	check(s.Issuer == rl.Issuer.String(), "Issuer", s.Issuer, rl.Issuer.String())
	check(s.Number == nil && rl.Number == nil || s.Number != nil && rl.Number != nil && s.Number.Cmp(rl.Number) == 0, "Number", s.Number, rl.Number)
	check(s.ThisUpdate.Equal(rl.ThisUpdate), "ThisUpdate", s.ThisUpdate, rl.ThisUpdate)
	check(s.NextUpdate.Equal(rl.NextUpdate), "NextUpdate", s.NextUpdate, rl.NextUpdate)
	check(s.SignatureAlgorithm == rl.SignatureAlgorithm, "SignatureAlgorithm", s.SignatureAlgorithm, rl.SignatureAlgorithm)
	check(bytes.Equal(s.RawTBSRevocationList, rl.RawTBSRevocationList), "RawTBSRevocationList", len(s.RawTBSRevocationList), len(rl.RawTBSRevocationList))
	check(bytes.Equal(s.Signature, rl.Signature), "Signature", s.Signature, rl.Signature)
	check(bytes.Equal(s.AuthorityKeyID, rl.AuthorityKeyId), "AuthorityKeyID", s.AuthorityKeyID, rl.AuthorityKeyId)
	check(s.Entries == len(rl.RevokedCertificateEntries), "Entries", s.Entries, len(rl.RevokedCertificateEntries))
	var critical []asn1.ObjectIdentifier
	for _, e := range rl.Extensions {
		if e.Critical && !e.Id.Equal(oidIDP) && !e.Id.Equal(oidAKI) {
			critical = append(critical, e.Id)
		}
	}
	check(slices.EqualFunc(s.Critical, critical, asn1.ObjectIdentifier.Equal), "Critical", s.Critical, critical)
	check(s.IDP != nil == hasCRLExtension(rl, oidIDP), "IDP present", s.IDP != nil, s.IDP == nil)
	check(s.Delta == hasCRLExtension(rl, oidDelta), "Delta", s.Delta, !s.Delta)
	check(s.Freshest == hasCRLExtension(rl, oidFreshest), "Freshest", s.Freshest, !s.Freshest)
	if len(diffs) > 0 {
		return fmt.Sprint(diffs)
	}
	return ""
}

func hasCRLExtension(rl *x509.RevocationList, oid asn1.ObjectIdentifier) bool {
	for _, e := range rl.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

func compareEntries(s *Summary, entries []Entry, rl *x509.RevocationList) string {
	if len(entries) != len(rl.RevokedCertificateEntries) {
		return fmt.Sprintf("entries: Parse %d, x509 %d", len(entries), len(rl.RevokedCertificateEntries))
	}
	firstCritical := 0
	for i, e := range entries {
		want := rl.RevokedCertificateEntries[i]
		if !bytes.Equal(e.Serial, AppendSerial(nil, want.SerialNumber)) || serialInt(e.Serial).Cmp(want.SerialNumber) != 0 {
			return fmt.Sprintf("entry %d: serial %x, x509 %v", i+1, e.Serial, want.SerialNumber)
		}
		if !e.RevokedAt.Equal(want.RevocationTime) {
			return fmt.Sprintf("entry %d: revoked at %v, x509 %v", i+1, e.RevokedAt, want.RevocationTime)
		}
		if reason := max(e.Reason, 0); reason != want.ReasonCode {
			return fmt.Sprintf("entry %d: reason %d, x509 %d", i+1, e.Reason, want.ReasonCode)
		}
		for _, x := range want.Extensions {
			if x.Critical && firstCritical == 0 {
				firstCritical = i + 1
			}
		}
	}
	if got := s.CriticalEntry; firstCritical == 0 && got != nil || firstCritical != 0 && (got == nil || got.Index != firstCritical) {
		return fmt.Sprintf("first entry with a critical extension: Parse %+v, x509 entry %d", got, firstCritical)
	}
	return ""
}

// serialInt decodes DER INTEGER content independently of AppendSerial.
func serialInt(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return n
}
