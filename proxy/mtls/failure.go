package mtls

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
