package xds

import (
	"crypto/sha256"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func trustSecret(crl []byte, sans ...string) *tlsv3.Secret {
	vc := &tlsv3.CertificateValidationContext{
		TrustedCa:             &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: []byte("ca")}},
		Crl:                   &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: crl}},
		OnlyVerifyLeafCertCrl: false,
	}
	for _, s := range sans {
		vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_DNS,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}},
		})
	}
	return &tlsv3.Secret{Name: "trust/clients", Type: &tlsv3.Secret_ValidationContext{ValidationContext: vc}}
}

// TestDigestIsContentHash: equal content hashes alike whatever the
// pointers, and any change of content, including one that moves bytes
// between adjacent strings, hashes differently.
func TestDigestIsContentHash(t *testing.T) {
	sum := func(r *tlsv3.Secret) [sha256.Size]byte {
		t.Helper()
		s, err := newHasher().sum(r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := trustSecret([]byte("crl-bytes"), "ab", "c")
	if sum(base) != sum(proto.Clone(base).(*tlsv3.Secret)) {
		t.Fatal("a clone hashes differently")
	}
	leaf := proto.Clone(base).(*tlsv3.Secret)
	leaf.GetValidationContext().OnlyVerifyLeafCertCrl = true
	unset := proto.Clone(base).(*tlsv3.Secret)
	unset.GetValidationContext().AllowExpiredCertificate = false
	withCRL := proto.Clone(base).(*tlsv3.Secret)
	withCRL.GetValidationContext().CustomValidatorConfig = nil
	wrapped := proto.Clone(base).(*tlsv3.Secret)
	wrapped.GetValidationContext().MaxVerifyDepth = wrapperspb.UInt32(0)
	for name, other := range map[string]*tlsv3.Secret{
		"other CRL bytes":     trustSecret([]byte("crl-bytez"), "ab", "c"),
		"bytes moved":         trustSecret([]byte("crl-bytes"), "a", "bc"),
		"one SAN fewer":       trustSecret([]byte("crl-bytes"), "ab"),
		"a bool set":          leaf,
		"a zero wrapper set":  wrapped,
		"another secret name": func() *tlsv3.Secret { s := proto.Clone(base).(*tlsv3.Secret); s.Name = "trust/other"; return s }(),
	} {
		if sum(other) == sum(base) {
			t.Errorf("%s: same hash", name)
		}
	}
	// Setting a field to its default is no change of content.
	if sum(unset) != sum(base) || sum(withCRL) != sum(base) {
		t.Error("default values changed the hash")
	}
}
