package mtls

import "crypto/tls"

// Reason classifies why a client certificate was refused. The values are the
// connection log's failure reason enum.
type Reason string

// The failure reasons. protocol_error is never produced here: the proxy uses
// it for handshakes that fail before verification.
const (
	ReasonNoCertificate         Reason = "no_certificate"
	ReasonUnknownCA             Reason = "unknown_ca"
	ReasonExpired               Reason = "expired"
	ReasonNotYetValid           Reason = "not_yet_valid"
	ReasonRevoked               Reason = "revoked"
	ReasonCRLMissing            Reason = "crl_missing"
	ReasonCRLExpired            Reason = "crl_expired"
	ReasonSANMismatch           Reason = "san_mismatch"
	ReasonBadKeyUsage           Reason = "bad_key_usage"
	ReasonBadSignatureAlgorithm Reason = "bad_signature_algorithm"
	ReasonProtocolError         Reason = "protocol_error"
	ReasonPinMismatch           Reason = "pin_mismatch"
	// ReasonDepthExceeded: every path to a trust anchor is longer than
	// max_verify_depth (Envoy: X509_V_ERR_CERT_CHAIN_TOO_LONG).
	ReasonDepthExceeded Reason = "depth_exceeded"
)

// Failure is a refused client certificate. Err says why in words; it never
// carries key material.
type Failure struct {
	Reason Reason
	Err    error
	// alert, when set, overrides the reason's alert (see AlertFor).
	alert Alert
}

func (f *Failure) Error() string {
	if f.Err == nil {
		return string(f.Reason)
	}
	return string(f.Reason) + ": " + f.Err.Error()
}

// Unwrap exposes the cause to errors.Is and errors.As.
func (f *Failure) Unwrap() error { return f.Err }

func fail(r Reason, err error) *Failure { return &Failure{Reason: r, Err: err} }

// Alert is a TLS alert description (RFC 8446 section 6).
type Alert uint8

// The alerts a refusal sends.
const (
	AlertHandshakeFailure        Alert = 40
	AlertBadCertificate          Alert = 42
	AlertUnsupportedCertificate  Alert = 43
	AlertCertificateRevoked      Alert = 44
	AlertCertificateExpired      Alert = 45
	AlertCertificateUnknown      Alert = 46
	AlertUnknownCA               Alert = 48
	AlertDecryptError            Alert = 51
	AlertBadCertificateHashValue Alert = 114
	AlertCertificateRequired     Alert = 116
)

// reasonAlerts is the alert Envoy sends for each reason: for a chain
// defect, BoringSSL's SSL_alert_from_verify_result (ssl/ssl_x509.cc) of the
// X509_V_ERR its verifier reports for the same defect; for SAN and pin
// mismatches, Envoy's DefaultCertValidator's own choice.
var reasonAlerts = map[Reason]Alert{
	// TLS 1.3 (tls13_process_certificate); see AlertFor for TLS 1.2.
	ReasonNoCertificate: AlertCertificateRequired,
	// UNABLE_TO_GET_ISSUER_CERT_LOCALLY, INVALID_CA, SELF_SIGNED_CERT_IN_CHAIN...
	ReasonUnknownCA: AlertUnknownCA,
	// CERT_HAS_EXPIRED; CERT_NOT_YET_VALID maps to the same alert.
	ReasonExpired:     AlertCertificateExpired,
	ReasonNotYetValid: AlertCertificateExpired,
	ReasonRevoked:     AlertCertificateRevoked,
	// UNABLE_TO_GET_CRL.
	ReasonCRLMissing: AlertUnknownCA,
	// CRL_HAS_EXPIRED, CRL_NOT_YET_VALID.
	ReasonCRLExpired: AlertCertificateExpired,
	// Envoy leaves its default, SSL_AD_CERTIFICATE_UNKNOWN.
	ReasonSANMismatch: AlertCertificateUnknown,
	// INVALID_PURPOSE: the leaf's key usage or extended key usage.
	ReasonBadKeyUsage: AlertUnsupportedCertificate,
	// CERT_SIGNATURE_FAILURE.
	ReasonBadSignatureAlgorithm: AlertDecryptError,
	// Envoy: SSL_AD_BAD_CERTIFICATE_HASH_VALUE.
	ReasonPinMismatch: AlertBadCertificateHashValue,
	// CERT_CHAIN_TOO_LONG.
	ReasonDepthExceeded: AlertUnknownCA,
}

// AlertFor is the alert that refuses f in a handshake of the given TLS
// version. A failure whose reason covers X509 errors with other alerts
// carries its own (see failAlert); an unknown reason gets bad_certificate,
// what Go's TLS stack sends.
func (f *Failure) AlertFor(version uint16) Alert {
	a := f.alert
	if a == 0 {
		a = reasonAlerts[f.Reason]
	}
	switch {
	case a == 0:
		return AlertBadCertificate
	case a == AlertCertificateRequired && version < tls.VersionTLS13:
		// certificate_required is TLS 1.3 only; BoringSSL's TLS 1.2
		// server (handshake_server.cc) sends handshake_failure.
		return AlertHandshakeFailure
	}
	return a
}

// failAlert is fail for a defect whose X509_V_ERR maps to another alert
// than its reason's usual one.
func failAlert(r Reason, a Alert, err error) *Failure {
	return &Failure{Reason: r, Err: err, alert: a}
}
