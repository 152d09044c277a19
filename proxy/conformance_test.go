package proxy

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/certplane/certplane/pki/pkitest"
)

// envoyCase is one case of ../shared/conformance/envoy/cases.json (see the
// README beside it).
type envoyCase struct {
	Name                     string   `json:"name"`
	TrustedCA                []string `json:"trusted_ca"`
	CRL                      []string `json:"crl"`
	CRLInTrustedCA           bool     `json:"crl_in_trusted_ca"`
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

// conformanceReason is the transport_failure each rejected case must log:
// the Envoy stat or verify error of envoy_expected_detail, in the proxy's
// reason enum.
var conformanceReason = map[string]string{
	"td_untrusted_self_signed_client":                   "unknown_ca",
	"td_client_from_other_ca":                           "unknown_ca",
	"td_no_client_cert_when_required":                   "no_certificate",
	"td_expired_client_default":                         "expired",
	"td_expired_client_allowed_but_wrong_ca":            "unknown_ca",
	"td_crl_revoked_leaf":                               "revoked",
	"td_crl_inside_trust_bundle_revoked":                "revoked",
	"td_crl_complete_chain_revoked_leaf":                "revoked",
	"td_crl_incomplete_chain_revoked_leaf":              "revoked",
	"td_crl_incomplete_chain_not_revoked":               "crl_missing",
	"td_crl_inside_bundle_incomplete_chain_not_revoked": "crl_missing",
	"td_crl_leaf_only_mode_revoked":                     "revoked",
	"td_san_dns_mismatch_cert_without_san":              "san_mismatch",
	"td_san_matcher_makes_cert_mandatory":               "no_certificate",
	"td_san_dns_wildcard_matches_one_label_only":        "san_mismatch",
	"ic_root_only_trust_store_max_depth_2":              "depth_exceeded",
}

// conformanceDay is the instant the corpus's verdicts are recorded for.
var conformanceDay = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// sharedDir finds ../shared/<rel> beside the module root (the directory
// holding go.mod), or skips the test when it is absent.
func sharedDir(t *testing.T, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the test directory; cannot locate ../shared")
		}
		dir = parent
	}
	p := filepath.Join(filepath.Dir(dir), "shared", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s is absent (%v): the Envoy conformance corpus is not checked out beside the module", p, err)
	}
	return p
}

// resources are the Listener, RouteConfiguration and trust Secret a control
// plane serves for the case (docs/resources.md): a combined validation
// context whose SDS secret trust/<case> holds trusted_ca (CRLs included when
// the case carries them there) and crl, and whose default_validation_context
// holds the per-listener settings, exactly as the Envoy test set them.
func (c envoyCase) resources(t *testing.T, data string) []types.Resource {
	t.Helper()
	read := func(files []string) []byte {
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
	trust := "trust/" + c.Name
	if c.CRLInTrustedCA && len(c.CRL) > 0 {
		t.Fatalf("%s: crl_in_trusted_ca with a separate crl list", c.Name)
	}
	secret := trustSecret(trust, read(c.TrustedCA), read(c.CRL))

	spec := listenerSpec{name: c.Name, certs: []string{"server/proxy"}, mode: "verify", trust: trust, xfcc: true, routes: [][2]string{{"/", "app"}}}
	msgs := spec.build()
	l := msgs[0].(*listenerv3.Listener)
	fc := l.FilterChains[0]
	var dtc tlsv3.DownstreamTlsContext
	if err := fc.TransportSocket.GetTypedConfig().UnmarshalTo(&dtc); err != nil {
		t.Fatal(err)
	}
	dtc.RequireClientCertificate = wrapperspb.Bool(c.RequireClientCertificate)
	def := dtc.CommonTlsContext.GetCombinedValidationContext().DefaultValidationContext
	def.OnlyVerifyLeafCertCrl = c.OnlyVerifyLeafCertCRL
	def.AllowExpiredCertificate = c.AllowExpired
	switch c.TrustChainVerification {
	case "VERIFY_TRUST_CHAIN":
	case "ACCEPT_UNTRUSTED":
		def.TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
	default:
		t.Fatalf("%s: unknown trust_chain_verification %q", c.Name, c.TrustChainVerification)
	}
	for _, s := range c.SANs {
		typ, ok := tlsv3.SubjectAltNameMatcher_SanType_value[s.SANType]
		if !ok {
			t.Fatalf("%s: unknown san_type %q", c.Name, s.SANType)
		}
		def.MatchTypedSubjectAltNames = append(def.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_SanType(typ),
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s.Matcher.Exact}},
		})
	}
	if c.MaxVerifyDepth != nil {
		def.MaxVerifyDepth = wrapperspb.UInt32(*c.MaxVerifyDepth)
	}
	fc.TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&dtc)}
	return []types.Resource{l, msgs[1], secret}
}

// TestEnvoyConformanceThroughProxy runs every case of Envoy's own
// client-certificate tests through real handshakes against the proxy, fed
// over a real ADS stream (one listener per case, one snapshot), at the date
// the verdicts are recorded for, over TLS 1.2 and TLS 1.3. Each verdict must
// be Envoy's, and each refusal must log its reason.
func TestEnvoyConformanceThroughProxy(t *testing.T) {
	dir := sharedDir(t, filepath.Join("conformance", "envoy"))
	raw, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []envoyCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	if len(cases) != 33 {
		t.Fatalf("cases.json has %d cases, want 33", len(cases))
	}
	data := filepath.Join(dir, "data")
	serverCA := pkitest.NewCA(t, "Server Root CA")
	b := startBackend(t, "backend")
	rs := &resourceSet{}
	rs.add(keyPairSecret("server/proxy", serverCA.Server("proxy.test")))
	rs.add(backendSpec{name: "app", endpoints: []string{b.addr()}}.build()...)
	for _, c := range cases {
		rs.add(c.resources(t, data)...)
	}
	a := startADS(t, "127.0.0.1:0")
	a.set(rs)
	px := startProxyClock(t, a.addr, func() time.Time { return conformanceDay })
	waitHosts(t, px.Proxy, "app", 1)
	accepted := 0
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			var cert *tls.Certificate
			if c.ClientCert != nil {
				kp, err := tls.LoadX509KeyPair(filepath.Join(data, *c.ClientCert), filepath.Join(data, *c.ClientKey))
				if err != nil {
					t.Fatal(err)
				}
				cert = &kp
			}
			addr := px.addr(t, c.Name)
			for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				cl := httpsClient(serverCA.Cert, cert, false)
				cl.Transport.(*http.Transport).TLSClientConfig.MaxVersion = ver
				code, body, err := get(cl, "https://"+addr+"/")
				got := "accept"
				if err != nil {
					got = "reject"
				}
				if got != c.Expected {
					t.Errorf("%s: verdict %s (%v), Envoy's is %s (%s)", tls.VersionName(ver), got, err, c.Expected, c.Detail)
					continue
				}
				if got == "accept" {
					if code != http.StatusOK || body != "backend" {
						t.Errorf("%s: accepted but got %d %q, want the backend's 200", tls.VersionName(ver), code, body)
					}
					continue
				}
				want := map[string]string{"msg": "handshake", "listener": c.Name, "result": "fail", "tls_version": versionName(ver), keyTransportFailure: conformanceReason[c.Name]}
				waitFor(t, "log line "+conformanceReason[c.Name], func() bool { return len(px.log.find(want)) == 1 })
			}
			if c.Expected == "accept" {
				accepted++
			}
		})
	}
	if accepted != 17 {
		t.Errorf("%d cases accepted, want the corpus's 17", accepted)
	}
}
