package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/certplane/certplane/pki"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/google/go-cmp/cmp"
)

func TestNewVerifierRefuses(t *testing.T) {
	p := newAttackPKI(t)
	rootCRL, _ := p.crls(t, false, false)
	otherCRL := pki.CRLPEM(ok(p.other.CRL(pki.CRLOptions{})))
	forged := ok(pki.NewRootCA(pki.Options{CommonName: "Attack Root CA", Organization: "certplane"}))
	forgedCRL := pki.CRLPEM(ok(forged.CRL(pki.CRLOptions{})))
	exact := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "x"}}
	cases := []struct {
		name string
		vc   *tlsv3.CertificateValidationContext
		want string
	}{
		{"crl without trusted_ca", &tlsv3.CertificateValidationContext{Crl: inline(rootCRL)},
			"validation context: Failed to load CRL from <inline> without trusted CA"},
		{"SAN matcher without trusted_ca", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: exact}}},
			"validation context: SAN-based verification of peer certificates without trusted CA is insecure and not allowed"},
		{"allow_expired without trusted_ca", &tlsv3.CertificateValidationContext{AllowExpiredCertificate: true},
			"validation context: Certificate validity period is always ignored without trusted CA"},
		{"bad PEM in trusted_ca", &tlsv3.CertificateValidationContext{TrustedCa: inline([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))},
			"validation context: trusted_ca: PEM block 0: x509: malformed certificate"},
		{"no certificate in trusted_ca", &tlsv3.CertificateValidationContext{TrustedCa: inline([]byte("junk"))},
			"validation context: Failed to load trusted CA certificates from <inline>: no CERTIFICATE PEM block"},
		{"private key in trusted_ca", &tlsv3.CertificateValidationContext{TrustedCa: inline(append(p.caPEM, ok(pki.KeyPEM(p.root.Key))...))},
			`validation context: trusted_ca: PEM block 1 has type "PRIVATE KEY"; want CERTIFICATE or X509 CRL`},
		{"CRL with a forged signature", &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM), Crl: inline(forgedCRL)},
			`validation context: CRL of "CN=Attack Root CA,O=certplane": signature does not verify against any trusted CA of that name`},
		{"filename data source", &tlsv3.CertificateValidationContext{TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/ca.pem"}}},
			"validation context: trusted_ca: filename data sources are not implemented (send inline_bytes)"},
		{"unimplemented fields", &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM), CustomValidatorConfig: &corev3.TypedExtensionConfig{Name: "x", TypedConfig: ok(anypb.New(wrapperspb.Bool(true)))}, RequireSignedCertificateTimestamp: wrapperspb.Bool(true)},
			"validation context: fields not implemented by certplane proxy: require_signed_certificate_timestamp, custom_validator_config"},
		{"unknown trust_chain_verification", &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM), TrustChainVerification: 7},
			"validation context: invalid CertificateValidationContext.TrustChainVerification: value must be one of the defined enum values"},
		{"bad hash pin", &tlsv3.CertificateValidationContext{VerifyCertificateHash: []string{strings.Repeat("zz", 32)}},
			"validation context: verify_certificate_hash: Invalid hex-encoded SHA-256 " + strings.Repeat("zz", 32)},
		{"bad spki pin", &tlsv3.CertificateValidationContext{VerifyCertificateSpki: []string{strings.Repeat("A", 43) + "!"}},
			"validation context: verify_certificate_spki: Invalid base64-encoded SHA-256 " + strings.Repeat("A", 43) + "!"},
		{"bad regex", &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM), MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}}}},
			"validation context: match_typed_subject_alt_names[0]: Failed to create string SAN matcher: safe_regex \"(\": error parsing regexp: missing closing ): `^(?:()$`"},
		{"OTHER_NAME without a dotted oid", &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM), MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_OTHER_NAME, Oid: "UPN", Matcher: exact}}},
			`validation context: match_typed_subject_alt_names[0]: Failed to create string SAN matcher: OTHER_NAME oid "UPN": want a dotted OID such as 1.3.6.1.4.1.311.20.2.3`},
	}
	for _, c := range cases {
		_, err := NewVerifier(c.vc, true, Options{})
		if err == nil || err.Error() != c.want {
			t.Errorf("%s:\n got: %v\nwant: %s", c.name, err, c.want)
		}
	}
	// A CRL of an issuer outside the store is kept for intermediates the
	// client sends; it is not an error.
	if _, err := NewVerifier(&tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM), Crl: inline(otherCRL)}, true, Options{}); err != nil {
		t.Errorf("CRL of a foreign issuer: %v", err)
	}
}

func TestModes(t *testing.T) {
	p := newAttackPKI(t)
	dupCA := append(append([]byte{}, p.caPEM...), pki.CertPEM(p.root.Cert, p.inter.Cert)...)
	for _, c := range []struct {
		name       string
		vc         *tlsv3.CertificateValidationContext
		require    bool
		auth       tls.ClientAuthType
		mandatory  bool
		advertised int
	}{
		{"off", nil, true, tls.NoClientCert, false, -1},
		{"verify", &tlsv3.CertificateValidationContext{TrustedCa: inline(dupCA)}, true, tls.RequireAnyClientCert, true, 2},
		{"optional", &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM)}, false, tls.RequestClientCert, false, 1},
		{"suppressed CA list", &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM), SuppressClientCaList: true}, true, tls.RequireAnyClientCert, true, -1},
		{"passthrough ignores require without a CA", &tlsv3.CertificateValidationContext{TrustChainVerification: tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED}, true, tls.RequestClientCert, false, -1},
		{"empty context asks nothing", &tlsv3.CertificateValidationContext{}, true, tls.NoClientCert, false, -1},
	} {
		v, err := NewVerifier(c.vc, c.require, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		n := -1
		if v.ClientCAs() != nil {
			//lint:ignore SA1019 the pool holds no system roots; this counts the advertised names
			n = len(v.ClientCAs().Subjects())
		}
		if v.ClientAuth() != c.auth || v.Mandatory() != c.mandatory || n != c.advertised {
			t.Errorf("%s: ClientAuth %v Mandatory %v advertised %d; want %v %v %d", c.name, v.ClientAuth(), v.Mandatory(), n, c.auth, c.mandatory, c.advertised)
		}
	}
}

func TestMergeValidationContext(t *testing.T) {
	def := &tlsv3.CertificateValidationContext{
		MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a"}}}},
		VerifyCertificateHash:     []string{"h1"},
		OnlyVerifyLeafCertCrl:     true,
		MaxVerifyDepth:            wrapperspb.UInt32(3),
		TrustedCa:                 inline([]byte("default")),
	}
	dyn := &tlsv3.CertificateValidationContext{
		TrustedCa:             inline([]byte("dynamic")),
		Crl:                   inline([]byte("crl")),
		VerifyCertificateHash: []string{"h2"},
	}
	got := MergeValidationContext(def, dyn)
	want := &tlsv3.CertificateValidationContext{
		MatchTypedSubjectAltNames: def.MatchTypedSubjectAltNames,
		VerifyCertificateHash:     []string{"h1", "h2"},
		OnlyVerifyLeafCertCrl:     true,
		MaxVerifyDepth:            wrapperspb.UInt32(3),
		TrustedCa:                 inline([]byte("dynamic")),
		Crl:                       inline([]byte("crl")),
	}
	if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
		t.Fatalf("merge (-want +got):\n%s", d)
	}
	if len(def.VerifyCertificateHash) != 1 || string(def.TrustedCa.GetInlineBytes()) != "default" {
		t.Fatal("MergeValidationContext modified its input")
	}
	if got := MergeValidationContext(nil, nil); got == nil {
		t.Fatal("MergeValidationContext(nil, nil) = nil, want an empty message")
	}
}

// TestRecheckAfterCRLUpdate: a connection accepted under one CRL is refused
// by Recheck once a new CRL revokes its certificate, and a still-valid one
// stays.
func TestRecheckAfterCRLUpdate(t *testing.T) {
	p := newAttackPKI(t)
	build := func(revoke bool) *Verifier {
		rootCRL, interCRL := p.crls(t, revoke, false)
		vc := &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM), Crl: inline(append(rootCRL, interCRL...))}
		return ok(NewVerifier(vc, true, Options{}))
	}
	before, after := build(false), build(true)
	srv := serverCert(t)
	f, peer := handshake(t, before, srv, clientOf(p.mallory), tls.VersionTLS13)
	if f != nil {
		t.Fatalf("mallory refused before revocation: %v", f)
	}
	if f := before.Recheck(peer); f != nil {
		t.Fatalf("Recheck with the same CRL: %v", f)
	}
	if f := after.Recheck(peer); f == nil || f.Reason != ReasonRevoked {
		t.Fatalf("Recheck after revocation: %v, want revoked", f)
	}
	if f := after.Recheck([]*x509.Certificate{p.alice.Cert, p.inter.Cert}); f != nil {
		t.Fatalf("a valid client would be dropped: %v", f)
	}
}
