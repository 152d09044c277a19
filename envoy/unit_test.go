package envoy

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/config"
)

func goldenModel(t *testing.T, c string) *config.Model {
	t.Helper()
	return loadCase(t, filepath.Join("testdata", c))
}

// withListener returns a copy of m whose only listener is a modified copy of
// m's first one: models are immutable, tests build new ones.
func withListener(m *config.Model, edit func(*config.Listener)) (*config.Model, *config.Listener) {
	l := *m.Listeners[0]
	l.ClientAuth.SubjectAltNames = slices.Clone(l.ClientAuth.SubjectAltNames)
	edit(&l)
	n := *m
	n.Listeners = []*config.Listener{&l}
	return &n, &l
}

func TestUnitHoldsExactlyWhatTheListenerNeeds(t *testing.T) {
	m := goldenModel(t, "two-listeners")
	byName := map[string]*config.Listener{}
	for _, l := range m.Listeners {
		byName[l.Name] = l
	}
	want := map[string]map[string][]string{
		"api": {
			resource.ListenerType: {"api"},
			resource.RouteType:    {"api"},
			resource.ClusterType:  {"api", "payments"},
			resource.EndpointType: {"api", "payments"},
			resource.SecretType:   {"server/api", "trust/partners"},
		},
		"payments": {
			resource.ListenerType: {"payments"},
			resource.RouteType:    {"payments"},
			resource.ClusterType:  {"payments"},
			resource.EndpointType: {"payments"},
			resource.SecretType:   {"server/payments", "trust/partners"},
		},
	}
	for name, types := range want {
		s, err := Unit(m, byName[name])
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != len(Types) {
			t.Errorf("%s: %d types, want all %d", name, len(s), len(Types))
		}
		for typ, names := range types {
			if got := s.Names(typ); !slices.Equal(got, names) {
				t.Errorf("%s: %s = %v, want %v", name, shortType(typ), got, names)
			}
		}
		refs, err := ReferencedSecrets(s)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(refs, types[resource.SecretType]) {
			t.Errorf("%s: ReferencedSecrets = %v", name, refs)
		}
	}
	// A listener that is not the model's own is refused, even if equal.
	clone := *m.Listeners[0]
	if _, err := Unit(m, &clone); err == nil || err.Error() != `listener "api" is not one of the model's valid listeners` {
		t.Errorf("Unit(copy) error = %v", err)
	}
}

func TestReferencedSecretsSeesClusters(t *testing.T) {
	m := goldenModel(t, "upstream-mtls")
	s, err := Unit(m, m.Listeners[0])
	if err != nil {
		t.Fatal(err)
	}
	refs, err := ReferencedSecrets(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"client/edge-client", "server/payments", "trust/internal"}; !slices.Equal(refs, want) {
		t.Errorf("ReferencedSecrets = %v, want %v", refs, want)
	}
}

// Rotating a certificate or updating a CRL must change only the Secret: a
// changed Listener makes Envoy drain its connections.
func TestRotationChangesOnlySecrets(t *testing.T) {
	m := goldenModel(t, "crl-full-chain")
	before, err := Unit(m, m.Listeners[0])
	if err != nil {
		t.Fatal(err)
	}
	other := goldenModel(t, "sni-multi-cert") // a source of another key pair
	n := *m
	n.Servers = maps.Clone(m.Servers)
	kp := *m.Servers["payments"]
	kp.ChainPEM = other.Servers["api"].ChainPEM
	kp.KeyPEM = other.Servers["api"].KeyPEM
	n.Servers["payments"] = &kp
	n.Trust = maps.Clone(m.Trust)
	ts := *m.Trust["partners"]
	ts.CRLPEM = nil // CRLs removed
	n.Trust["partners"] = &ts
	after, err := Unit(&n, n.Listeners[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range Types {
		for _, name := range before.Names(typ) {
			same := proto.Equal(before[typ][name], after[typ][name])
			if typ == resource.SecretType && same {
				t.Errorf("secret %s did not change", name)
			}
			if typ != resource.SecretType && !same {
				t.Errorf("%s %s changed on a certificate/CRL change", shortType(typ), name)
			}
		}
	}
}

// Equal inputs must give byte-identical resources, Any contents included
// (the access log's JSON format is a map): xds versions are content hashes.
func TestDeterministic(t *testing.T) {
	m := goldenModel(t, "sni-multi-cert")
	var first []byte
	for i := 0; i < 20; i++ {
		s, err := Unit(m, m.Listeners[0])
		if err != nil {
			t.Fatal(err)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s[resource.ListenerType]["edge"])
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = b
		} else if string(b) != string(first) {
			t.Fatalf("build %d differs from build 0", i)
		}
	}
}

func TestSNIChains(t *testing.T) {
	m := goldenModel(t, "sni-multi-cert")
	lis, err := Listener(m, m.Listeners[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, fc := range lis.GetFilterChains() {
		got[fc.GetName()] = fc.GetFilterChainMatch().GetServerNames()
	}
	want := map[string][]string{
		"edge/payments": {"payments.example.com", "www.payments.example.com"},
		"edge/api":      {"api.example.com", "*.api.example.com"},
		"edge/admin":    {"admin.example.com", "admin.payments.example.com"},
	}
	if len(got) != len(want) {
		t.Fatalf("chains %v", got)
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("%s matches %v, want %v", k, got[k], v)
		}
	}
	def := lis.GetDefaultFilterChain()
	if def.GetName() != "edge/payments/default" || def.GetFilterChainMatch() != nil {
		t.Errorf("default chain %q match %v", def.GetName(), def.GetFilterChainMatch())
	}
	d0 := proto.Clone(def).(*listenerv3.FilterChain)
	d0.Name, d0.FilterChainMatch = lis.GetFilterChains()[0].GetName(), lis.GetFilterChains()[0].GetFilterChainMatch()
	if !proto.Equal(d0, lis.GetFilterChains()[0]) {
		t.Error("default chain is not chain 0 without its match")
	}
	if lf := lis.GetListenerFilters(); len(lf) != 1 || lf[0].GetName() != TLSInspectorName {
		t.Errorf("listener filters %v, want tls_inspector", lf)
	}

	single := goldenModel(t, "mode-verify")
	lis, err = Listener(single, single.Listeners[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	if lis.GetListenerFilters() != nil || lis.GetDefaultFilterChain() != nil || lis.GetFilterChains()[0].GetFilterChainMatch() != nil {
		t.Error("a one-certificate listener has no tls_inspector, default chain or match")
	}
}

func TestBuilderErrors(t *testing.T) {
	verify := goldenModel(t, "mode-verify")
	sni := goldenModel(t, "sni-multi-cert")
	mtls := goldenModel(t, "upstream-mtls")
	sniDup := func() *config.Model { // admin's key pair replaced by api's
		n := *sni
		n.Servers = maps.Clone(sni.Servers)
		kp := *sni.Servers["api"]
		kp.Name = "admin"
		n.Servers["admin"] = &kp
		return &n
	}()
	depth := uint32(2)
	cases := []struct {
		name string
		m    *config.Model
		edit func(*config.Listener)
		want string
	}{
		{"missing server cert", verify, func(l *config.Listener) { l.Certificates = []string{"nope"} },
			`listener "payments": server certificate "nope" is not loaded (certs/server/nope)`},
		{"missing trust store", verify, func(l *config.Listener) { l.ClientAuth.TrustStore = "nope" },
			`listener "payments": trust store "nope" is not loaded (certs/trust/nope)`},
		{"verify without store", verify, func(l *config.Listener) { l.ClientAuth.TrustStore = "" },
			`listener "payments": client_auth mode verify needs a trust_store`},
		{"missing backend", verify, func(l *config.Listener) { l.Routes = []config.Route{{PathPrefix: "/", Backend: "nope"}} },
			`listener "payments" route /: backend "nope" is not defined or not valid`},
		{"unknown mode", verify, func(l *config.Listener) { l.ClientAuth.Mode = 9 },
			`listener "payments": unknown client_auth mode ClientAuthMode(9)`},
		{"passthrough with SAN rules", verify, func(l *config.Listener) {
			l.ClientAuth.Mode = config.ModePassthrough
			l.ClientAuth.SubjectAltNames = []config.SANMatcher{{Type: config.SANDNS, Exact: "a.example"}}
		}, `listener "payments": client_auth mode passthrough verifies nothing; subject_alt_names, certificate_hashes, spki_hashes, allow_expired and max_verify_depth need mode verify or optional`},
		{"off with depth", verify, func(l *config.Listener) {
			l.ClientAuth.Mode = config.ModeOff
			l.ClientAuth.MaxVerifyDepth = &depth
		}, `listener "payments": client_auth mode off requests no certificate; subject_alt_names, certificate_hashes, spki_hashes, allow_expired and max_verify_depth need mode verify or optional`},
		{"two patterns", verify, func(l *config.Listener) {
			l.ClientAuth.SubjectAltNames = []config.SANMatcher{{Type: config.SANURI, Exact: "a", Prefix: "b"}}
		}, `listener "payments": subject_alt_names[0]: uri matcher needs exactly one of exact, prefix, suffix, contains, regex; has 2`},
		{"bad SAN type", verify, func(l *config.Listener) {
			l.ClientAuth.SubjectAltNames = []config.SANMatcher{{Type: 9, Exact: "a"}}
		}, `listener "payments": subject_alt_names[0]: unknown SAN type SANType(9) (want dns, uri, email or ip)`},
		{"bad crl scope", verify, func(l *config.Listener) { l.ClientAuth.CRL = 9 },
			`listener "payments": unknown crl scope CRLScope(9) (want full_chain or leaf_only)`},
		{"bad TLS version", verify, func(l *config.Listener) { l.TLS.MinVersion = 0 },
			`listener "payments": tls_policy tls12 min_version: unsupported TLS version TLSVersion(0) (want TLSv1_2 or TLSv1_3)`},
		{"inverted TLS versions", verify, func(l *config.Listener) { l.TLS.MinVersion, l.TLS.MaxVersion = config.TLSv13, config.TLSv12 },
			`listener "payments": tls_policy tls12: min_version TLSv1_3 is above max_version TLSv1_2`},
		{"unknown header", verify, func(l *config.Listener) { l.ClientCertHeaders = []config.ClientCertHeader{config.HeaderXFCC, 9} },
			`listener "payments": unknown client_cert_headers entry ClientCertHeader(9) (want xfcc or alb)`},
		{"certificate twice", sni, func(l *config.Listener) { l.Certificates = []string{"payments", "api", "api"} },
			`listener "edge": certificate "api" is listed twice`},
		{"duplicate SNI name", sniDup, func(l *config.Listener) {},
			`listener "edge": DNS name "api.example.com" is in both certificate "api" and certificate "admin"; SNI could not choose between them`},
		{"unknown underscore action", verify, func(l *config.Listener) { l.HTTP.HeadersWithUnderscores = 9 },
			`listener "payments": unknown http.headers_with_underscores UnderscoresAction(9) (want drop or reject)`},
		{"valid mTLS listener", mtls, func(l *config.Listener) {}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, l := withListener(tc.m, tc.edit)
			_, err := Unit(m, l)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v\nwant    %s", err, tc.want)
			}
		})
	}

	// A backend whose client certificate is gone.
	n := *mtls
	n.Clients = nil
	if _, err := Unit(&n, n.Listeners[0]); err == nil || !strings.Contains(err.Error(), `backend "payments": client certificate "edge-client" is not loaded (certs/client/edge-client)`) {
		t.Errorf("error = %v", err)
	}
}

func TestTranslateKeepsGoodListeners(t *testing.T) {
	m := goldenModel(t, "two-listeners")
	n := *m
	n.Listeners = slices.Clone(m.Listeners)
	bad := *n.Listeners[0] // api
	bad.Routes = []config.Route{{PathPrefix: "/", Backend: "gone"}}
	n.Listeners[0] = &bad
	out, err := Translate(&n)
	if err == nil || err.Error() != `listener "api" route /: backend "gone" is not defined or not valid` {
		t.Fatalf("Translate error = %v", err)
	}
	if _, ok := out["payments"]; !ok || len(out) != 1 {
		t.Errorf("Translate kept %v, want payments only", slices.Sorted(maps.Keys(out)))
	}
}

func TestMergeRefusesConflicts(t *testing.T) {
	a := goldenModel(t, "mode-verify")
	b := goldenModel(t, "upstream-tls")
	sa, err := Unit(a, a.Listeners[0])
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Unit(b, b.Listeners[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(sa, sb); err == nil || !strings.HasPrefix(err.Error(), "two different ") {
		t.Errorf("Merge error = %v", err)
	}
	if _, err := Merge(sa, sa); err != nil {
		t.Errorf("Merge of equal sets: %v", err)
	}
}

// Validate must look inside Any: the generated ValidateAll stops there.
func TestValidateLooksInsideAny(t *testing.T) {
	m := goldenModel(t, "mode-verify")
	lis, err := Listener(m, m.Listeners[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := HTTPConnectionManager(m.Listeners[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.StatPrefix = "" // required by the HCM's rules
	a, err := typed(h)
	if err != nil {
		t.Fatal(err)
	}
	lis.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
	if err := lis.ValidateAll(); err != nil {
		t.Fatalf("the Listener's own ValidateAll should not see it: %v", err)
	}
	err = Validate(lis)
	if err == nil || !strings.Contains(err.Error(), "HttpConnectionManager.StatPrefix") {
		t.Errorf("Validate = %v, want the HCM's stat_prefix error", err)
	}
}
