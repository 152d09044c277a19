package mtls

import "crypto/x509"

// The failure reasons of client_auth.ocsp (the proxy's proxy/ocspcheck):
// the responder said revoked; it does not know the certificate; no usable
// answer came in time. unknown and unavailable refuse only in require mode.
const (
	ReasonOCSPRevoked     Reason = "ocsp_revoked"
	ReasonOCSPUnknown     Reason = "ocsp_unknown"
	ReasonOCSPUnavailable Reason = "ocsp_unavailable"
)

func init() {
	// certificate_revoked, as for a CRL; for the others no alert says it
	// better than certificate_unknown ("some other issue... rendering it
	// unacceptable"); bad_certificate_status_response is for the status
	// a server staples, not for a client certificate.
	reasonAlerts[ReasonOCSPRevoked] = AlertCertificateRevoked
	reasonAlerts[ReasonOCSPUnknown] = AlertCertificateUnknown
	reasonAlerts[ReasonOCSPUnavailable] = AlertCertificateUnknown
}

// NewFailure is a refusal decided outside the Verifier (OCSP).
func NewFailure(r Reason, err error) *Failure { return fail(r, err) }

// IssuerOf returns the certificate that signed leaf: a CA of the trust
// store or one of the intermediates the client sent (peer[1:]), nil if
// none. Call it after Verify passed: the path is already proven.
func (v *Verifier) IssuerOf(leaf *x509.Certificate, peer []*x509.Certificate) *x509.Certificate {
	for _, c := range v.bySubject[string(leaf.RawIssuer)] {
		if leaf.CheckSignatureFrom(c) == nil {
			return c
		}
	}
	for _, c := range peer {
		if c != leaf && c.IsCA && leaf.CheckSignatureFrom(c) == nil {
			return c
		}
	}
	return nil
}
