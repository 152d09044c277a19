// Package proxytest holds fixtures shared by the proxy's tests and the
// certplane command's tests: the attack matrix, with its PKI and the verdict
// each case must get. Both the tests that feed the proxy hand-built xDS
// resources and those that go through a certplane config and a real control
// plane run the very same cases.
package proxytest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/proxy/mtls"
)

// ServerName is the DNS name of the matrix's server certificate.
const ServerName = "proxy.test"

// Case is one row of the attack matrix: a listener with its own trust store,
// CRLs and flags, one client, and the verdict.
type Case struct {
	Name string
	// Mode is the client-auth mode: off, optional, passthrough or verify.
	Mode string
	// CAs and CRLs are the trust store (nil for off and passthrough).
	CAs, CRLs []byte
	// SANURI, when set, is an exact URI subject-alt-name rule.
	SANURI string
	// LeafOnly checks only the leaf's CRL (only_verify_leaf_cert_crl).
	LeafOnly bool
	// ConfigMode, when set, replaces Mode in the certplane config: the
	// config refuses mode optional with SAN rules (Envoy would make the
	// certificate mandatory anyway), so that case is written as verify.
	ConfigMode string
	// Client is what the client presents; nil sends no certificate.
	Client *pkitest.Leaf
	// Reason is the connection log's failure reason; "" means accepted.
	Reason string
	// Alert is the TLS alert a refused client receives in TLS 1.3 (see
	// AlertFor), the one Envoy sends for the same refusal: BoringSSL's
	// SSL_alert_from_verify_result of the X509_V_ERR its verifier reports,
	// Envoy's own for SAN and pin mismatches, certificate_required for no
	// certificate. Zero when accepted.
	Alert mtls.Alert
}

// AlertFor is the alert the client receives when the handshake negotiated
// version: certificate_required exists only in TLS 1.3; a TLS 1.2 server
// (BoringSSL, and Go) sends handshake_failure for a missing certificate.
func (c Case) AlertFor(version uint16) mtls.Alert {
	if c.Alert == mtls.AlertCertificateRequired && version < tls.VersionTLS13 {
		return mtls.AlertHandshakeFailure
	}
	return c.Alert
}

// Matrix is the attack matrix and the PKI behind it.
type Matrix struct {
	ServerCA *pkitest.CA
	Server   *pkitest.Leaf // DNS ServerName
	Cases    []Case
	// At is the instant the verdicts hold; give it to the proxy as its
	// mtls clock. It is two hours after the PKI was made, so the
	// "expired-crl" case's CRL, current for one more hour when a control
	// plane loads it (certplane refuses a CRL that has already expired),
	// has expired when the proxy checks it: a CRL that lapses while served
	// must fail closed. Every other certificate and CRL is valid at At.
	At time.Time
}

// NewMatrix builds the PKI and the 27 cases.
func NewMatrix(tb testing.TB) *Matrix {
	tb.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	serverCA := pkitest.NewCA(tb, "Server Root CA")
	root := pkitest.NewCA(tb, "Matrix Root")
	inter := root.Intermediate("Matrix Intermediate")
	notCA := root.Intermediate("Not A CA", pkitest.NotCA())
	revokedInter := root.Intermediate("Revoked Intermediate")
	alice := root.Client("alice", pkitest.URIs("spiffe://example.org/alice"))
	bob := root.Client("bob")
	viaInter := inter.Client("carol")
	viaNotCA := notCA.Client("dave") // issued by a CA:FALSE "intermediate"
	viaRevoked := revokedInter.Client("erin")
	wrongEKU := root.Client("frank", pkitest.EKU(x509.ExtKeyUsageServerAuth))
	expired := root.Client("old", pkitest.Expired())
	future := root.Client("future", pkitest.NotYetValid())
	mallory := root.Client("mallory")
	eve := pkitest.NewCA(tb, "Other CA").Client("eve")
	impostor := root.Impostor().Client("imp")

	rootCRL := root.CRLPEM(pkitest.CRLRevoked(mallory))
	rootCRLRevInter := root.CRLPEM(pkitest.CRLRevoked(&pkitest.Leaf{Leaf: &pki.Leaf{Cert: revokedInter.Cert}}))
	interCRL := inter.CRLPEM()
	revInterCRL := revokedInter.CRLPEM()
	lapsingCRL := root.CRLPEM(pkitest.CRLTimes(now.Add(-time.Hour), now.Add(time.Hour)))

	rootCA := root.CertPEM()
	rootInter := cat(root.CertPEM(), inter.CertPEM())
	rootRevInter := cat(root.CertPEM(), revokedInter.CertPEM())
	const aliceURI = "spiffe://example.org/alice"
	v := func(name string, cas, crls []byte, client *pkitest.Leaf, reason string, alert mtls.Alert) Case {
		return Case{Name: name, Mode: "verify", CAs: cas, CRLs: crls, Client: client, Reason: reason, Alert: alert}
	}
	leafOnly := func(c Case) Case { c.LeafOnly = true; return c }
	san := func(c Case) Case { c.SANURI = aliceURI; return c }
	mode := func(m string, c Case) Case { c.Mode = m; return c }
	configVerify := func(c Case) Case { c.ConfigMode = "verify"; return c }
	cases := []Case{
		v("valid", rootCA, rootCRL, alice, "", 0),
		v("no-cert", rootCA, rootCRL, nil, "no_certificate", mtls.AlertCertificateRequired),
		v("other-ca", rootCA, rootCRL, eve, "unknown_ca", mtls.AlertUnknownCA),
		v("impostor-ca", rootCA, nil, impostor, "unknown_ca", mtls.AlertUnknownCA),
		v("expired", rootCA, rootCRL, expired, "expired", mtls.AlertCertificateExpired),
		v("not-yet-valid", rootCA, rootCRL, future, "not_yet_valid", mtls.AlertCertificateExpired),
		v("revoked", rootCA, rootCRL, mallory, "revoked", mtls.AlertCertificateRevoked),
		v("wrong-eku", rootCA, nil, wrongEKU, "bad_key_usage", mtls.AlertUnsupportedCertificate),
		v("ca-false-intermediate", rootCA, nil, viaNotCA, "unknown_ca", mtls.AlertUnknownCA),
		v("intermediate-chain-full-crls", rootInter, cat(rootCRL, interCRL), viaInter, "", 0),
		v("intermediate-crl-missing-full-chain", rootInter, interCRL, viaInter, "crl_missing", mtls.AlertUnknownCA),
		leafOnly(v("intermediate-crl-missing-leaf-only", rootInter, interCRL, viaInter, "", 0)),
		leafOnly(v("root-crl-only-leaf-only", rootInter, rootCRL, viaInter, "crl_missing", mtls.AlertUnknownCA)),
		v("revoked-intermediate", rootRevInter, cat(rootCRLRevInter, revInterCRL), viaRevoked, "revoked", mtls.AlertCertificateRevoked),
		leafOnly(v("revoked-intermediate-leaf-only", rootRevInter, cat(rootCRLRevInter, revInterCRL), viaRevoked, "", 0)),
		v("intermediate-as-anchor", inter.CertPEM(), nil, viaInter, "", 0),
		v("expired-crl", rootCA, lapsingCRL, alice, "crl_expired", mtls.AlertCertificateExpired),
		san(v("san-allowed", rootCA, nil, alice, "", 0)),
		san(v("san-miss", rootCA, nil, bob, "san_mismatch", mtls.AlertCertificateUnknown)),
		configVerify(san(mode("optional", v("san-makes-cert-mandatory", rootCA, nil, nil, "no_certificate", mtls.AlertCertificateRequired)))),
		mode("optional", v("optional-no-cert", rootCA, rootCRL, nil, "", 0)),
		mode("optional", v("optional-valid", rootCA, rootCRL, alice, "", 0)),
		mode("optional", v("optional-untrusted", rootCA, rootCRL, eve, "unknown_ca", mtls.AlertUnknownCA)),
		mode("optional", v("optional-revoked", rootCA, rootCRL, mallory, "revoked", mtls.AlertCertificateRevoked)),
		{Name: "passthrough-untrusted", Mode: "passthrough", Client: eve},
		{Name: "passthrough-no-cert", Mode: "passthrough"},
		{Name: "off", Mode: "off", Client: alice},
	}
	return &Matrix{
		ServerCA: serverCA,
		Server:   serverCA.Server(ServerName),
		Cases:    cases,
		At:       now.Add(2 * time.Hour),
	}
}

// Clock returns At, for mtls.Options.Now.
func (m *Matrix) Clock() time.Time { return m.At }

// WriteTree writes the matrix as a certplane config: the server key pair
// "proxy", one trust store per case that has one (certs/trust/<case>/ca.pem
// and ca.crl), and config/matrix.yaml with one listener per case at
// addr(case name), each sending XFCC (but mode off) and routing / to
// backend "app" whose only endpoint is backend (host:port).
func (m *Matrix) WriteTree(tr *pkitest.Tree, addr func(name string) string, backend string) {
	tr.Server("proxy", m.Server)
	var b strings.Builder
	b.WriteString("listeners:\n")
	for _, c := range m.Cases {
		mode := c.Mode
		if c.ConfigMode != "" {
			mode = c.ConfigMode
		}
		fmt.Fprintf(&b, "  - name: %s\n    address: %s\n    certificates: [proxy]\n", c.Name, addr(c.Name))
		if mode != "off" {
			// The config refuses identity headers where no certificate is requested.
			b.WriteString("    client_cert_headers: [xfcc]\n")
		}
		fmt.Fprintf(&b, "    routes:\n      - {path_prefix: /, backend: app}\n    client_auth:\n      mode: %s\n", mode)
		if c.CAs != nil {
			tr.Trust(c.Name, "ca.pem", c.CAs)
			if c.CRLs != nil {
				tr.Trust(c.Name, "ca.crl", c.CRLs)
			}
			fmt.Fprintf(&b, "      trust_store: %s\n", c.Name)
		}
		if c.LeafOnly {
			b.WriteString("      crl: leaf_only\n")
		}
		if c.SANURI != "" {
			fmt.Fprintf(&b, "      subject_alt_names:\n        - {type: uri, exact: %q}\n", c.SANURI)
		}
	}
	fmt.Fprintf(&b, "backends:\n  - name: app\n    endpoints: [%q]\n", backend)
	tr.WriteConfig("matrix.yaml", b.String())
}

func cat(b ...[]byte) []byte {
	var out []byte
	for _, x := range b {
		out = append(out, x...)
	}
	return out
}
