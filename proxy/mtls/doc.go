// Package mtls is the client-certificate verification engine of the fallback
// proxy. It compiles an Envoy CertificateValidationContext (the very message
// certplane publishes over xDS) into a Verifier that reaches the verdicts
// Envoy's DefaultCertValidator reaches, and it renders the client-identity
// headers (XFCC in SANITIZE_SET form, and the %DOWNSTREAM_PEER_*% command
// operators) byte for byte as Envoy does.
//
// Verification runs in tls.Config.VerifyConnection, so resumed sessions are
// checked again, and Recheck re-runs it on a live connection's chain after a
// CRL or trust update. Path building is crypto/x509's; revocation, depth,
// time and pin checks follow BoringSSL as Envoy configures it:
//   - X509_V_FLAG_PARTIAL_CHAIN: any trusted certificate is an anchor, yet the
//     path is extended to a self-signed root when the store holds one;
//   - CRL_CHECK|CRL_CHECK_ALL whenever a CRL is loaded: every certificate of
//     the path, the anchor included, needs a CRL from its issuer
//     (only_verify_leaf_cert_crl keeps the leaf only);
//   - NO_CHECK_TIME for allow_expired_certificate (certificates and CRLs);
//   - max_verify_depth counts the anchor and not the leaf.
//
// Deliberate differences from Envoy, all fail-closed: SHA-1 and MD5
// signatures are refused (Go cannot verify them), and names are compared as
// raw DER rather than in OpenSSL's canonical form.
package mtls
