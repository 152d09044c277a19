package mtls

import (
	"crypto/tls"
	"testing"
)

// TestAlertFor: each reason's alert is the one Envoy sends for the same
// defect (BoringSSL's SSL_alert_from_verify_result of its X509_V_ERR, or
// Envoy's own choice), and certificate_required becomes handshake_failure
// in TLS 1.2, where it does not exist.
func TestAlertFor(t *testing.T) {
	for _, c := range []struct {
		f      *Failure
		tls12  Alert
		tls13  Alert
		reason string
	}{
		{fail(ReasonNoCertificate, nil), 40, 116, "no certificate: handshake_failure / certificate_required"},
		{fail(ReasonUnknownCA, nil), 48, 48, "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"},
		{fail(ReasonExpired, nil), 45, 45, "CERT_HAS_EXPIRED"},
		{fail(ReasonNotYetValid, nil), 45, 45, "CERT_NOT_YET_VALID"},
		{fail(ReasonRevoked, nil), 44, 44, "CERT_REVOKED"},
		{fail(ReasonCRLMissing, nil), 48, 48, "UNABLE_TO_GET_CRL"},
		{fail(ReasonCRLExpired, nil), 45, 45, "CRL_HAS_EXPIRED"},
		{fail(ReasonSANMismatch, nil), 46, 46, "Envoy's default certificate_unknown"},
		{fail(ReasonBadKeyUsage, nil), 43, 43, "INVALID_PURPOSE"},
		{fail(ReasonBadSignatureAlgorithm, nil), 51, 51, "CERT_SIGNATURE_FAILURE"},
		{fail(ReasonPinMismatch, nil), 114, 114, "Envoy's bad_certificate_hash_value"},
		{fail(ReasonDepthExceeded, nil), 48, 48, "CERT_CHAIN_TOO_LONG"},
		{fail(ReasonProtocolError, nil), 42, 42, "not a verification failure: Go's bad_certificate"},
		{failAlert(ReasonBadKeyUsage, AlertUnknownCA, nil), 48, 48, "CA without keyCertSign: INVALID_CA"},
		{failAlert(ReasonBadKeyUsage, AlertCertificateUnknown, nil), 46, 46, "KEYUSAGE_NO_CRL_SIGN"},
	} {
		if got := c.f.AlertFor(tls.VersionTLS12); got != c.tls12 {
			t.Errorf("%s (%s): TLS 1.2 alert %d, want %d", c.f.Reason, c.reason, got, c.tls12)
		}
		if got := c.f.AlertFor(tls.VersionTLS13); got != c.tls13 {
			t.Errorf("%s (%s): TLS 1.3 alert %d, want %d", c.f.Reason, c.reason, got, c.tls13)
		}
	}
}
