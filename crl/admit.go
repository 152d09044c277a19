package crl

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"
)

// Why a CRL is refused whatever CA signed it: BoringSSL would never use it
// to clear a certificate, so publishing it would only fail clients later.
var (
	ErrUnhandledCritical = errors.New("critical CRL extension BoringSSL does not handle")
	ErrCriticalEntry     = errors.New("critical CRL entry extension (BoringSSL handles none)")
	ErrDelta             = errors.New("delta CRL (neither BoringSSL nor Envoy supports delta CRLs)")
	ErrIndirect          = errors.New("indirect CRL (BoringSSL does not support indirect CRLs)")
	ErrReasonPartition   = errors.New("CRL partitioned by reason (onlySomeReasons; BoringSSL does not support it)")
	ErrAttributeCRL      = errors.New("CRL covers attribute certificates only (onlyContainsAttributeCerts)")
	ErrInvalidIDP        = errors.New("issuing distribution point sets more than one of onlyContainsUserCerts, onlyContainsCACerts, onlyContainsAttributeCerts")
	ErrNoIssuer          = errors.New("no CA of the trust store issued this CRL")
)

// What Admit reports without refusing.
var (
	// ErrExpired: nextUpdate has passed. The CRL is still the newest word
	// of its CA: serve it, and BoringSSL (CRL_HAS_EXPIRED) and the proxy
	// refuse that CA's clients, failing closed.
	ErrExpired = errors.New("CRL expired (nextUpdate has passed)")
	// ErrNotYetValid: thisUpdate is in the future (CRL_NOT_YET_VALID).
	ErrNotYetValid = errors.New("CRL not yet valid (thisUpdate is in the future)")
	// ErrNoNumber: no CRL number (RFC 5280 5.2.3: MUST); BoringSSL does
	// not need it, but rollback checks fall back to thisUpdate.
	ErrNoNumber = errors.New("CRL has no CRL number; rollback protection falls back to thisUpdate")
)

// Admit is the one CRL admission rule of certplane (`check`, `serve` and
// `proxy`), BoringSSL's as Envoy configures it. It refuses (err) a CRL that
// BoringSSL could never use to clear a certificate, or that no CA of cas
// issued, and reports (problems) what the caller must know but must not
// refuse: an expired or not-yet-valid CRL still fails its CA's clients
// closed once served. issuer is the CA that signed the CRL. now is
// compared at BoringSSL's one-second resolution.
//
// The rules and where each comes from are tabled in the package doc.
func Admit(s *Summary, cas []*x509.Certificate, now time.Time) (issuer *x509.Certificate, problems []error, err error) {
	issuer, err = findIssuer(s, cas)
	if err != nil {
		return nil, nil, err
	}
	if err := s.Usable(); err != nil {
		return nil, nil, err
	}
	return issuer, s.timeProblems(now), nil
}

// findIssuer returns the first CA that issued s (name, AKI, signature, CA
// and cRLSign), or the most telling reason none did.
func findIssuer(s *Summary, cas []*x509.Certificate) (*x509.Certificate, error) {
	var best error
	rank := 0
	for _, ca := range cas {
		if !bytes.Equal(s.RawIssuer, ca.RawSubject) {
			continue
		}
		err := s.AuthorityMatches(ca)
		if err == nil {
			err = s.CheckSignatureFrom(ca)
		}
		if err == nil {
			return ca, nil
		}
		// A CA that signed the CRL but may not (not a CA, no cRLSign) says
		// more than a wrong key, which says more than a wrong AKI.
		r := 1
		switch {
		case errors.Is(err, ErrNotCA), errors.Is(err, ErrNoCRLSign):
			r = 3
		case errors.Is(err, ErrSignature):
			r = 2
		}
		if r > rank {
			best, rank = fmt.Errorf("CA %s: %w", ca.Subject, err), r
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: no CA has subject %s", ErrNoIssuer, s.Issuer)
	}
	return nil, fmt.Errorf("%w: %w", ErrNoIssuer, best)
}

// Usable reports why BoringSSL would never use the CRL whatever its
// issuer, or nil: it is the CA-independent half of Admit.
func (s *Summary) Usable() error {
	switch {
	case s.Delta:
		return ErrDelta
	case len(s.Critical) > 0:
		return fmt.Errorf("%w: %s; reissue the CRL with it non-critical", ErrUnhandledCritical, oidName(s.Critical[0]))
	case s.CriticalEntry != nil:
		return fmt.Errorf("%w: entry %d (serial %x) has critical %s", ErrCriticalEntry, s.CriticalEntry.Index, s.CriticalEntry.Serial, oidName(s.CriticalEntry.OID))
	}
	if s.IDP == nil {
		return nil
	}
	only := 0
	for _, b := range []bool{s.IDP.OnlyUser, s.IDP.OnlyCA, s.IDP.OnlyAttr} {
		if b {
			only++
		}
	}
	switch {
	case only > 1:
		return ErrInvalidIDP
	case s.IDP.Indirect:
		return ErrIndirect
	case s.IDP.OnlySomeReasons:
		return ErrReasonPartition
	case s.IDP.OnlyAttr:
		return ErrAttributeCRL
	}
	return nil
}

// oidNames names the extensions an operator may meet in messages.
var oidNames = map[string]string{
	"2.5.29.20":         "CRL number",
	"2.5.29.21":         "reasonCode",
	"2.5.29.24":         "invalidityDate",
	"2.5.29.27":         "delta CRL indicator",
	"2.5.29.29":         "certificateIssuer",
	"2.5.29.46":         "freshest CRL",
	"1.3.6.1.5.5.7.1.1": "authority information access",
}

func oidName(oid asn1.ObjectIdentifier) string {
	if name, ok := oidNames[oid.String()]; ok {
		return name + " (" + oid.String() + ")"
	}
	return "extension " + oid.String()
}

// timeProblems is BoringSSL's check_crl_time at whole seconds: not yet
// valid while thisUpdate > now, expired once nextUpdate <= now.
func (s *Summary) timeProblems(now time.Time) []error {
	now = now.Truncate(time.Second)
	var problems []error
	if s.ThisUpdate.After(now) {
		problems = append(problems, fmt.Errorf("%w: thisUpdate %s", ErrNotYetValid, s.ThisUpdate.UTC().Format(time.RFC3339)))
	}
	if !s.NextUpdate.IsZero() && !s.NextUpdate.After(now) {
		problems = append(problems, fmt.Errorf("%w: nextUpdate %s", ErrExpired, s.NextUpdate.UTC().Format(time.RFC3339)))
	}
	if s.Number == nil {
		problems = append(problems, ErrNoNumber)
	}
	return problems
}

// Newer reports whether a supersedes b: a higher CRL number, or, when the
// numbers are equal or either is absent, a later thisUpdate. A CRL that b
// is Newer than must be refused where b is served: revocation never goes
// backwards. Neither is newer when both compare equal (the same CRL
// re-read, or a re-signed copy).
func Newer(a, b *Summary) bool {
	if a.Number != nil && b.Number != nil {
		if c := a.Number.Cmp(b.Number); c != 0 {
			return c > 0
		}
	}
	return a.ThisUpdate.After(b.ThisUpdate)
}
