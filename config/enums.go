package config

import (
	"fmt"
	"slices"
)

// The model's modes and policies are small enums rather than strings, so a
// misspelt value cannot get past the YAML decoder into a builder: each has
// a parse function, used by the decoder (its error keeps the wording users
// see today; the decoder adds file and line), and a String method that
// gives the YAML spelling, which check, status and goldens print.

// enumNames maps an enum's values to their YAML spelling; "" marks a value
// that has none (an enum whose zero value is not valid).
type enumNames []string

func (n enumNames) name(v uint8, typ string) string {
	if int(v) < len(n) && n[v] != "" {
		return n[v]
	}
	return fmt.Sprintf("%s(%d)", typ, v)
}

func (n enumNames) parse(s string) (uint8, bool) {
	i := slices.Index(n, s)
	if s == "" || i < 0 {
		return 0, false
	}
	return uint8(i), true
}

// ClientAuthMode is a listener's client certificate policy
// (docs/DESIGN.md, "Client authentication modes").
type ClientAuthMode uint8

// Client authentication modes. The zero value is off, as an absent
// client_auth is.
const (
	ModeOff         ClientAuthMode = iota // no client certificate requested
	ModeOptional                          // verified if presented
	ModePassthrough                       // any certificate, not verified, forwarded
	ModeVerify                            // required and verified
)

var modeNames = enumNames{"off", "optional", "passthrough", "verify"}

func (m ClientAuthMode) String() string { return modeNames.name(uint8(m), "ClientAuthMode") }

// MarshalText gives the YAML spelling, so JSON views print what users write.
func (m ClientAuthMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// VerifiesClients reports whether the mode checks client certificates
// against a trust store: only such listeners name one.
func (m ClientAuthMode) VerifiesClients() bool { return m == ModeOptional || m == ModeVerify }

// ParseClientAuthMode parses client_auth.mode; "" is off.
func ParseClientAuthMode(s string) (ClientAuthMode, error) {
	if s == "" {
		return ModeOff, nil
	}
	if v, ok := modeNames.parse(s); ok {
		return ClientAuthMode(v), nil
	}
	return ModeOff, fmt.Errorf("mode %q: want off, optional, passthrough or verify", s)
}

// CRLScope is which certificates of a client chain need a CRL.
type CRLScope uint8

// CRL checking scopes. The zero value is full-chain checking, the default.
const (
	CRLFullChain CRLScope = iota // every CA in the chain (Envoy's default)
	CRLLeafOnly                  // only_verify_leaf_cert_crl
)

var crlScopeNames = enumNames{"full_chain", "leaf_only"}

func (s CRLScope) String() string { return crlScopeNames.name(uint8(s), "CRLScope") }

// MarshalText gives the YAML spelling.
func (s CRLScope) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseCRLScope parses client_auth.crl.
func ParseCRLScope(s string) (CRLScope, error) {
	if v, ok := crlScopeNames.parse(s); ok {
		return CRLScope(v), nil
	}
	return CRLFullChain, fmt.Errorf("crl %q: want full_chain or leaf_only", s)
}

// UnderscoresAction is what a listener does with a request header whose
// name contains '_'.
type UnderscoresAction uint8

// Actions on request headers whose name contains '_'. The zero value is
// drop, the default.
const (
	UnderscoresDrop   UnderscoresAction = iota // remove such headers
	UnderscoresReject                          // answer 400
)

var underscoresNames = enumNames{"drop", "reject"}

func (a UnderscoresAction) String() string {
	return underscoresNames.name(uint8(a), "UnderscoresAction")
}

// MarshalText gives the YAML spelling.
func (a UnderscoresAction) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// ParseUnderscoresAction parses http.headers_with_underscores.
func ParseUnderscoresAction(s string) (UnderscoresAction, error) {
	if v, ok := underscoresNames.parse(s); ok {
		return UnderscoresAction(v), nil
	}
	return UnderscoresDrop, fmt.Errorf("headers_with_underscores %q: want drop (the default: remove such headers) or reject (answer 400)", s)
}

// ClientCertHeader selects a set of headers that carry the client identity
// to the backends.
type ClientCertHeader uint8

// Client certificate headers. The zero value is not a header.
const (
	HeaderXFCC ClientCertHeader = iota + 1 // x-forwarded-client-cert
	HeaderALB                              // ALB's x-amzn-mtls-clientcert-*
)

var headerNames = enumNames{"", "xfcc", "alb"}

func (h ClientCertHeader) String() string { return headerNames.name(uint8(h), "ClientCertHeader") }

// MarshalText gives the YAML spelling.
func (h ClientCertHeader) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// ParseClientCertHeader parses one client_cert_headers entry.
func ParseClientCertHeader(s string) (ClientCertHeader, error) {
	if v, ok := headerNames.parse(s); ok {
		return ClientCertHeader(v), nil
	}
	return 0, fmt.Errorf("%q is not one of xfcc, alb", s)
}

// SANType is the kind of subject alt name a SANMatcher matches.
type SANType uint8

// SAN matcher types. The zero value is not a type.
const (
	SANDNS SANType = iota + 1
	SANURI
	SANEmail
	SANIP
)

var sanTypeNames = enumNames{"", "dns", "uri", "email", "ip"}

func (t SANType) String() string { return sanTypeNames.name(uint8(t), "SANType") }

// MarshalText gives the YAML spelling.
func (t SANType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// ParseSANType parses a subject_alt_names entry's type.
func ParseSANType(s string) (SANType, error) {
	if v, ok := sanTypeNames.parse(s); ok {
		return SANType(v), nil
	}
	return 0, fmt.Errorf("type %q: want dns, uri, email or ip", s)
}

// TLSPolicyName names a resolved TLS policy.
type TLSPolicyName uint8

// TLS policy names. The zero value is tls12, the default policy.
const (
	TLSPolicy12     TLSPolicyName = iota // TLS 1.2 and 1.3, ECDHE AEAD suites
	TLSPolicy13                          // TLS 1.3 only
	TLSPolicyCustom                      // a mapping {min_version, max_version, cipher_suites}
)

var tlsPolicyNames = enumNames{"tls12", "tls13", "custom"}

func (n TLSPolicyName) String() string { return tlsPolicyNames.name(uint8(n), "TLSPolicyName") }

// MarshalText gives the YAML spelling.
func (n TLSPolicyName) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// TLSVersion is a TLS protocol version a policy allows. String gives
// Envoy's TlsParameters enum name.
type TLSVersion uint8

// TLS versions. The zero value is not a version.
const (
	TLSv12 TLSVersion = iota + 1
	TLSv13
)

var tlsVersionNames = enumNames{"", "TLSv1_2", "TLSv1_3"}

func (v TLSVersion) String() string { return tlsVersionNames.name(uint8(v), "TLSVersion") }

// MarshalText gives Envoy's name.
func (v TLSVersion) MarshalText() ([]byte, error) { return []byte(v.String()), nil }
