package mtls

import (
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type envoyCase struct {
	Name                     string   `json:"name"`
	TrustedCA                []string `json:"trusted_ca"`
	CRL                      []string `json:"crl"`
	OnlyVerifyLeafCertCRL    bool     `json:"only_verify_leaf_cert_crl"`
	ClientCert               *string  `json:"client_cert"`
	ClientKey                *string  `json:"client_key"`
	AllowExpired             bool     `json:"allow_expired"`
	RequireClientCertificate bool     `json:"require_client_certificate"`
	TrustChainVerification   string   `json:"trust_chain_verification"`
	SANs                     []struct {
		SANType string `json:"san_type"`
		Matcher struct {
			Exact string `json:"exact"`
		} `json:"matcher"`
	} `json:"match_typed_subject_alt_names"`
	MaxVerifyDepth *uint32 `json:"max_verify_depth"`
	Expected       string  `json:"expected"`
	Detail         string  `json:"envoy_expected_detail"`
}

// validationContext builds the message exactly as the Envoy test configured it.
func (c envoyCase) validationContext(t *testing.T, data string) *tlsv3.CertificateValidationContext {
	t.Helper()
	cat := func(files []string) []byte {
		var out []byte
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(data, f))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
		return out
	}
	vc := &tlsv3.CertificateValidationContext{
		TrustedCa:               &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: cat(c.TrustedCA)}},
		OnlyVerifyLeafCertCrl:   c.OnlyVerifyLeafCertCRL,
		AllowExpiredCertificate: c.AllowExpired,
	}
	if len(c.CRL) > 0 {
		vc.Crl = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: cat(c.CRL)}}
	}
	switch c.TrustChainVerification {
	case "VERIFY_TRUST_CHAIN":
	case "ACCEPT_UNTRUSTED":
		vc.TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
	default:
		t.Fatalf("unknown trust_chain_verification %q", c.TrustChainVerification)
	}
	for _, s := range c.SANs {
		vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_SanType(tlsv3.SubjectAltNameMatcher_SanType_value[s.SANType]),
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s.Matcher.Exact}},
		})
	}
	if c.MaxVerifyDepth != nil {
		vc.MaxVerifyDepth = wrapperspb.UInt32(*c.MaxVerifyDepth)
	}
	return vc
}

// wantReason is the reason each rejected case must carry: the Envoy stat or
// verify error of envoy_expected_detail, in this package's enum.
var wantReason = map[string]Reason{
	"td_untrusted_self_signed_client":                   ReasonUnknownCA,
	"td_client_from_other_ca":                           ReasonUnknownCA,
	"td_no_client_cert_when_required":                   ReasonNoCertificate,
	"td_expired_client_default":                         ReasonExpired,
	"td_expired_client_allowed_but_wrong_ca":            ReasonUnknownCA,
	"td_crl_revoked_leaf":                               ReasonRevoked,
	"td_crl_inside_trust_bundle_revoked":                ReasonRevoked,
	"td_crl_complete_chain_revoked_leaf":                ReasonRevoked,
	"td_crl_incomplete_chain_revoked_leaf":              ReasonRevoked,
	"td_crl_incomplete_chain_not_revoked":               ReasonCRLMissing,
	"td_crl_inside_bundle_incomplete_chain_not_revoked": ReasonCRLMissing,
	"td_crl_leaf_only_mode_revoked":                     ReasonRevoked,
	"td_san_dns_mismatch_cert_without_san":              ReasonSANMismatch,
	"td_san_matcher_makes_cert_mandatory":               ReasonNoCertificate,
	"td_san_dns_wildcard_matches_one_label_only":        ReasonSANMismatch,
	"ic_root_only_trust_store_max_depth_2":              ReasonDepthExceeded,
}

// TestEnvoyConformance runs every case of Envoy's own client-certificate
// tests through a real handshake and wants Envoy's verdict on each.
func TestEnvoyConformance(t *testing.T) {
	dir := conformanceDir(t, "envoy")
	raw, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []envoyCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) != 33 {
		t.Fatalf("cases.json has %d cases, want 33", len(cases))
	}
	data := filepath.Join(dir, "data")
	srv := serverCert(t)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			v, err := NewVerifier(c.validationContext(t, data), c.RequireClientCertificate, Options{Now: fixedClock})
			if err != nil {
				t.Fatalf("NewVerifier: %v", err)
			}
			var client *tls.Certificate
			if c.ClientCert != nil {
				kp, err := tls.LoadX509KeyPair(filepath.Join(data, *c.ClientCert), filepath.Join(data, *c.ClientKey))
				if err != nil {
					t.Fatal(err)
				}
				client = &kp
			}
			for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				f, _ := handshake(t, v, srv, client, ver)
				got := "accept"
				if f != nil {
					got = "reject"
				}
				if got != c.Expected {
					t.Errorf("TLS %x: verdict %s (%v), Envoy's is %s (%s)", ver, got, f, c.Expected, c.Detail)
				}
				if f != nil && f.Reason != wantReason[c.Name] {
					t.Errorf("TLS %x: reason %q (%v), want %q", ver, f.Reason, f, wantReason[c.Name])
				}
			}
		})
	}
}
