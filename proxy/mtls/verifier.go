package mtls

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Options tunes a Verifier.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CRLs, when set and not empty, is the validation context's crl as
	// parsed (ParseCRLs) from its bytes, and is used instead of the crl
	// field, which the caller may have released: a CRL of a million serials
	// takes seconds and hundreds of MB to parse, and its PEM is 46 MB. Its
	// CRLs are shared, not copied.
	CRLs *CRLSet
}

// defaultMaxDepth is Envoy's documented default for max_verify_depth.
const defaultMaxDepth = 100

// Verifier is a compiled validation context. It is immutable and safe for
// concurrent use; build a new one when the validation context changes.
type Verifier struct {
	now func() time.Time

	request   bool // ask the client for a certificate
	mandatory bool // refuse a handshake without one

	acceptUntrusted bool
	hasCA           bool
	roots           *x509.CertPool
	inters          *x509.CertPool // the trusted certs again, so paths reach the root
	bySubject       map[string][]*x509.Certificate
	clientCAs       *x509.CertPool

	crls         crlStore
	crlCheck     bool
	leafOnlyCRL  bool
	allowExpired bool
	maxDepth     int

	sans   []*sanMatcher
	hashes [][32]byte
	spkis  [][32]byte

	// keyUsage is the EKU the leaf must allow: clientAuth. The limbo test
	// sets serverAuth for SERVER cases.
	keyUsage x509.ExtKeyUsage

	// chains caches verified paths (see chainCache); it dies with the
	// Verifier, so a trust or CRL change starts afresh.
	chains *chainCache
}

// NewVerifier compiles vc for a listener whose DownstreamTlsContext has
// require_client_certificate = requireClientCert. A nil vc turns client
// authentication off. The error, meant for a NACK, names the field at fault:
// every field the proxy does not implement is refused, and so is what Envoy
// refuses (crl, SAN matchers or allow_expired_certificate without trusted_ca,
// bad PEM, malformed pins, unknown enum values).
func NewVerifier(vc *tlsv3.CertificateValidationContext, requireClientCert bool, opts Options) (*Verifier, error) {
	v := &Verifier{now: opts.Now, keyUsage: x509.ExtKeyUsageClientAuth, maxDepth: defaultMaxDepth, chains: newChainCache(chainCacheSize)}
	if v.now == nil {
		v.now = time.Now
	}
	if vc == nil {
		return v, nil
	}
	if err := vc.ValidateAll(); err != nil {
		return nil, fmt.Errorf("validation context: %w", err)
	}
	if err := unsupportedFields(vc); err != nil {
		return nil, err
	}
	switch vc.GetTrustChainVerification() {
	case tlsv3.CertificateValidationContext_VERIFY_TRUST_CHAIN:
	case tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED:
		v.acceptUntrusted = true
	default:
		return nil, fmt.Errorf("validation context: trust_chain_verification %d is not a known value", vc.GetTrustChainVerification())
	}

	caPEM, err := dataSource(vc.GetTrustedCa(), "trusted_ca")
	if err != nil {
		return nil, err
	}
	crlPEM, err := dataSource(vc.GetCrl(), "crl")
	if err != nil {
		return nil, err
	}
	if len(caPEM) > 0 {
		if err := v.loadTrustedCA(caPEM); err != nil {
			return nil, err
		}
	}
	// A non-empty opts.CRLs is vc's crl as the caller parsed it, and the
	// caller may have released the PEM (vc's crl then unset): it is the CRL.
	if s := opts.CRLs; s != nil && len(s.crls) > 0 {
		if !v.hasCA {
			return nil, errors.New("validation context: Failed to load CRL from <inline> without trusted CA")
		}
		for _, c := range s.crls {
			v.crls.add(c)
		}
		v.crlCheck = true
	} else if len(crlPEM) > 0 {
		if !v.hasCA {
			return nil, errors.New("validation context: Failed to load CRL from <inline> without trusted CA")
		}
		if err := v.loadCRLs(crlPEM, "crl"); err != nil {
			return nil, err
		}
		v.crlCheck = true
	}
	if !v.hasCA {
		if len(vc.GetMatchTypedSubjectAltNames()) > 0 {
			return nil, errors.New("validation context: SAN-based verification of peer certificates without trusted CA is insecure and not allowed")
		}
		if vc.GetAllowExpiredCertificate() {
			return nil, errors.New("validation context: Certificate validity period is always ignored without trusted CA")
		}
	}
	if err := v.checkCRLSigners(); err != nil {
		return nil, err
	}
	v.leafOnlyCRL = vc.GetOnlyVerifyLeafCertCrl()
	v.allowExpired = vc.GetAllowExpiredCertificate()
	if d := vc.GetMaxVerifyDepth(); d != nil {
		// BoringSSL today excludes the anchor, so Envoy sets N-1 (0 stays 0):
		// a leaf straight under an anchor is always within depth.
		v.maxDepth = max(int(min(d.GetValue(), 1<<20)), 1)
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		sm, err := compileSANMatcher(m)
		if err != nil {
			return nil, fmt.Errorf("validation context: match_typed_subject_alt_names[%d]: Failed to create string SAN matcher: %w", i, err)
		}
		v.sans = append(v.sans, sm)
	}
	for _, h := range vc.GetVerifyCertificateHash() {
		hh := h
		if len(hh) == 95 {
			hh = strings.ReplaceAll(hh, ":", "")
		}
		b, err := hex.DecodeString(hh)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("validation context: verify_certificate_hash: Invalid hex-encoded SHA-256 %s", hh)
		}
		v.hashes = append(v.hashes, [32]byte(b))
	}
	for _, h := range vc.GetVerifyCertificateSpki() {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("validation context: verify_certificate_spki: Invalid base64-encoded SHA-256 %s", h)
		}
		v.spkis = append(v.spkis, [32]byte(b))
	}

	// Envoy's verify modes: trusted_ca or ACCEPT_UNTRUSTED asks for a
	// certificate; SAN matchers and pins make it mandatory unless
	// ACCEPT_UNTRUSTED; require_client_certificate counts only with a CA.
	pins := len(v.sans) > 0 || len(v.hashes) > 0 || len(v.spkis) > 0
	v.request = v.hasCA || v.acceptUntrusted || pins
	v.mandatory = (v.hasCA && requireClientCert) || (pins && !v.acceptUntrusted)
	if vc.GetSuppressClientCaList() {
		v.clientCAs = nil
	}
	return v, nil
}

func unsupportedFields(vc *tlsv3.CertificateValidationContext) error {
	var bad []string
	if vc.GetCaCertificateProviderInstance() != nil {
		bad = append(bad, "ca_certificate_provider_instance")
	}
	if vc.GetSystemRootCerts() != nil {
		bad = append(bad, "system_root_certs")
	}
	if vc.GetWatchedDirectory() != nil {
		bad = append(bad, "watched_directory")
	}
	//lint:ignore SA1019 a deprecated field is still a field the proxy must refuse
	if len(vc.GetMatchSubjectAltNames()) > 0 {
		bad = append(bad, "match_subject_alt_names (use match_typed_subject_alt_names)")
	}
	if vc.GetRequireSignedCertificateTimestamp().GetValue() {
		bad = append(bad, "require_signed_certificate_timestamp")
	}
	if vc.GetCustomValidatorConfig() != nil {
		bad = append(bad, "custom_validator_config")
	}
	if len(bad) > 0 {
		return fmt.Errorf("validation context: fields not implemented by certplane proxy: %s", strings.Join(bad, ", "))
	}
	return nil
}

// dataSource returns inline data; the proxy never reads files or the
// environment, as it learns everything over xDS.
func dataSource(ds *corev3.DataSource, field string) ([]byte, error) {
	switch s := ds.GetSpecifier().(type) {
	case nil:
		return nil, nil
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_Filename:
		return nil, fmt.Errorf("validation context: %s: filename data sources are not implemented (send inline_bytes)", field)
	case *corev3.DataSource_EnvironmentVariable:
		return nil, fmt.Errorf("validation context: %s: environment_variable data sources are not implemented (send inline_bytes)", field)
	default:
		return nil, fmt.Errorf("validation context: %s: unknown data source %T", field, s)
	}
}

// ClientAuth is what to set on tls.Config. Verification is ours, so Go
// never verifies. A mandatory certificate is required of Go's TLS stack,
// which then refuses a handshake without one as BoringSSL does: alert
// certificate_required in TLS 1.3, handshake_failure in TLS 1.2 (the proxy
// logs it as no_certificate). Verify refuses it too, for resumed sessions.
func (v *Verifier) ClientAuth() tls.ClientAuthType {
	switch {
	case v.mandatory:
		return tls.RequireAnyClientCert
	case v.request:
		return tls.RequestClientCert
	}
	return tls.NoClientCert
}

// ClientCAs are the CA names to advertise in the CertificateRequest (unique
// subjects of trusted_ca, as Envoy sends them). Nil when
// suppress_client_ca_list is set or there is no trusted_ca.
func (v *Verifier) ClientCAs() *x509.CertPool { return v.clientCAs }

// Mandatory reports whether a handshake without a client certificate fails.
func (v *Verifier) Mandatory() bool { return v.mandatory }

// Verify checks the peer of a completed handshake. Call it from
// tls.Config.VerifyConnection (which also runs on resumption). Nil means
// accept. Return it as an error only when non-nil: a nil *Failure inside an
// error interface is not a nil error.
func (v *Verifier) Verify(cs tls.ConnectionState) *Failure {
	return v.verify(cs.PeerCertificates)
}

// Recheck re-verifies an established connection's peer chain
// (tls.ConnectionState.PeerCertificates) with this Verifier, typically one
// built from an updated trust store or CRL, so that revocation reaches live
// connections. Nil means the connection may stay.
func (v *Verifier) Recheck(peer []*x509.Certificate) *Failure {
	return v.verify(peer)
}

func (v *Verifier) verify(peer []*x509.Certificate) *Failure {
	if !v.request {
		return nil
	}
	if len(peer) == 0 || peer[0] == nil {
		if v.mandatory {
			return fail(ReasonNoCertificate, errors.New("the client sent no certificate"))
		}
		return nil
	}
	if v.acceptUntrusted {
		return nil
	}
	leaf := peer[0]
	if v.hasCA {
		if f := v.verifyChain(peer); f != nil {
			return f
		}
	}
	if len(v.sans) > 0 && !v.matchSANs(leaf) {
		return fail(ReasonSANMismatch, fmt.Errorf("no subject alternative name of %q matches the configured matchers", rfc2253(leaf.RawSubject)))
	}
	if (len(v.hashes) > 0 || len(v.spkis) > 0) && !v.matchPins(leaf) {
		return fail(ReasonPinMismatch, fmt.Errorf("certificate %q matches neither verify_certificate_hash nor verify_certificate_spki", rfc2253(leaf.RawSubject)))
	}
	return nil
}

func (v *Verifier) matchSANs(leaf *x509.Certificate) bool {
	names := subjectAltNames(leaf)
	for _, m := range v.sans {
		for _, gn := range names {
			if m.match(gn) {
				return true
			}
		}
	}
	return false
}

func (v *Verifier) matchPins(leaf *x509.Certificate) bool {
	h := sha256.Sum256(leaf.Raw)
	for _, want := range v.hashes {
		if h == want {
			return true
		}
	}
	s := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	for _, want := range v.spkis {
		if s == want {
			return true
		}
	}
	return false
}
