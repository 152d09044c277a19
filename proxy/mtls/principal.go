package mtls

import (
	"crypto/x509"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// SANMatcher is Envoy's StringSanMatcher, as the RBAC principal
// mtls_authenticated applies it (Ssl::peerCertificateSanMatches): one SAN
// of the matcher's type, taken on its own, must match.
type SANMatcher struct{ m *sanMatcher }

// CompileSANMatcher compiles m as Envoy does for match_typed_subject_alt_names.
func CompileSANMatcher(m *tlsv3.SubjectAltNameMatcher) (*SANMatcher, error) {
	sm, err := compileSANMatcher(m)
	if err != nil {
		return nil, err
	}
	return &SANMatcher{sm}, nil
}

// MatchCert reports whether any SAN of c matches.
func (m *SANMatcher) MatchCert(c *x509.Certificate) bool {
	for _, gn := range subjectAltNames(c) {
		if m.m.match(gn) {
			return true
		}
	}
	return false
}

// URISANs are c's URI SANs as Envoy's uriSanPeerCertificate gives them:
// every one, in certificate order, bytes as written.
func URISANs(c *x509.Certificate) []string { return sansOf(c, genURI) }

// DNSSANs are c's DNS SANs as Envoy's dnsSansPeerCertificate gives them.
func DNSSANs(c *x509.Certificate) []string { return sansOf(c, genDNS) }

func sansOf(c *x509.Certificate, tag int) []string {
	var out []string
	for _, gn := range subjectAltNames(c) {
		if gn.tag == tag {
			out = append(out, gn.value)
		}
	}
	return out
}

// Subject is c's subject as Envoy's subjectPeerCertificate (and XFCC
// Subject, %DOWNSTREAM_PEER_SUBJECT%) prints it: RFC 2253 by BoringSSL.
func Subject(c *x509.Certificate) string { return rfc2253(c.RawSubject) }

// Issuer is c's issuer printed as Subject prints a subject (Envoy's
// issuerPeerCertificate, %DOWNSTREAM_PEER_ISSUER%).
func Issuer(c *x509.Certificate) string { return rfc2253(c.RawIssuer) }

// Validates reports whether the verifier validates client certificates
// against trusted CAs, so that a certificate on a connection it admitted
// is one Envoy reports as validated (peerCertificateValidated). A verifier
// that accepts untrusted chains (passthrough) validates nothing.
func (v *Verifier) Validates() bool { return v != nil && v.hasCA && !v.acceptUntrusted }
