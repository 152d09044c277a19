package proxy

import (
	"strings"
	"testing"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/proxy/mtls"
)

// TestRouteAllowByIssuer: type issuer, loaded as certplane proxy loads it
// (ProxyOnly), over real handshakes: two clients of one root through two
// intermediates; allow [issuer contains "CN=Ops Intermediate"] admits the
// ops client only, the other gets 403 without reaching the backend, and
// is counted. Mixed with a uri entry, any one admits; the listener's
// issuer subjects apply on every route.
func TestRouteAllowByIssuer(t *testing.T) {
	root := pkitest.NewCA(t, "Partners Root")
	opsCA := root.Intermediate("Ops Intermediate", pkitest.Organization("Partners"))
	devCA := root.Intermediate("Dev Intermediate", pkitest.Organization("Partners"))
	e := newConfigEnvWith(t, `
listeners:
  - name: partners
    address: 127.0.0.1:8443
    certificates: [proxy]
    client_auth:
      mode: verify
      trust_store: partners
      subjects: [{type: issuer, suffix: "O=Partners"}]
    routes:
      - {path_prefix: /ops, backend: app, allow: [{type: issuer, contains: "CN=Ops Intermediate"}]}
      - path_prefix: /mixed
        backend: app
        allow:
          - {type: uri, exact: "spiffe://partners/dev-admin"}
          - {type: issuer, regex: "CN=Ops Intermediate,O=Partners"}
      - {path_prefix: /, backend: app}
backends:
  - name: app
    endpoints: ["APP"]
`, root, config.Loader{ProxyOnly: true})
	ops := opsCA.Client("ops")
	dev := devCA.Client("dev")
	devAdmin := devCA.Client("dev-admin", pkitest.URIs("spiffe://partners/dev-admin"))
	rootClient := root.Client("root-client") // issuer CN=Partners Root: no O=Partners
	if got := mtls.Issuer(ops.Cert); got != "CN=Ops Intermediate,O=Partners" {
		t.Fatalf("ops issuer %q", got)
	}
	for _, c := range []struct {
		path string
		leaf *pkitest.Leaf
		name string
		want int
	}{
		{"/ops/x", ops, "ops", 200},
		{"/ops/x", dev, "dev", 403},
		{"/ops/x", devAdmin, "dev-admin", 403},
		{"/mixed", ops, "ops", 200},
		{"/mixed", devAdmin, "dev-admin", 200},
		{"/mixed", dev, "dev", 403},
		{"/", dev, "dev", 200},
		{"/", rootClient, "root-client", 403},
	} {
		before := e.app.hitCount()
		code, body := e.do(t, "partners", c.leaf, c.path, nil)
		reached := e.app.hitCount() - before
		if code != c.want {
			t.Errorf("%s as %s: %d %q, want %d", c.path, c.name, code, body, c.want)
			continue
		}
		if c.want == 403 && (body != "RBAC: access denied" || reached != 0) {
			t.Errorf("%s as %s: body %q, backend reached %d times", c.path, c.name, body, reached)
		}
		if c.want == 200 && reached != 1 {
			t.Errorf("%s as %s: backend reached %d times, want 1", c.path, c.name, reached)
		}
	}
	for route, want := range map[string]float64{"/ops": 2, "/mixed": 1, "/": 1} {
		if got := counterValue(t, e.px.metrics.rbacDenied.WithLabelValues("partners", route)); got != want {
			t.Errorf("rbac denied counter for %s = %v, want %v", route, got, want)
		}
	}
}

// TestIssuerPrincipalNACKs: a sourced_metadata principal is accepted only
// in the shape envoy/ emits for type issuer; any other would match
// something the proxy does not read, so it is refused.
func TestIssuerPrincipalNACKs(t *testing.T) {
	meta := func(mut func(s *rbacconfigv3.SourcedMetadata)) *routev3.RouteConfiguration {
		s := &rbacconfigv3.SourcedMetadata{MetadataMatcher: &matcherv3.MetadataMatcher{
			Filter: issuerMetadataFilter,
			Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: issuerMetadataKey}}},
			Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "CN=x"}}}},
		}}
		mut(s)
		per := &rbacv3.RBACPerRoute{Rbac: &rbacv3.RBAC{Rules: &rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{"p": {
			Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Any{Any: true}}},
			Principals:  []*rbacconfigv3.Principal{{Identifier: &rbacconfigv3.Principal_SourcedMetadata{SourcedMetadata: s}}},
		}}}}}
		return &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
			Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match:                &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action:               &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
				TypedPerFilterConfig: map[string]*anypb.Any{rbacFilterName: mustAny(per)},
			}},
		}}}
	}
	if err := New(Options{}).Validate("", []proto.Message{meta(func(*rbacconfigv3.SourcedMetadata) {})}); err != nil {
		t.Fatalf("the shape envoy/ emits is refused: %v", err)
	}
	for _, c := range []struct {
		name string
		mut  func(s *rbacconfigv3.SourcedMetadata)
		want string
	}{
		{"other filter", func(s *rbacconfigv3.SourcedMetadata) { s.MetadataMatcher.Filter = "envoy.filters.http.jwt_authn" },
			`filter "envoy.filters.http.jwt_authn" is not implemented`},
		{"other key", func(s *rbacconfigv3.SourcedMetadata) {
			s.MetadataMatcher.Path[0] = &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "subject"}}
		}, `path must be ["dn"]`},
		{"two keys", func(s *rbacconfigv3.SourcedMetadata) {
			s.MetadataMatcher.Path = append(s.MetadataMatcher.Path, s.MetadataMatcher.Path[0])
		}, `path must be ["dn"]`},
		{"route metadata", func(s *rbacconfigv3.SourcedMetadata) { s.MetadataSource = rbacconfigv3.MetadataSource_ROUTE },
			"metadata_source ROUTE is not implemented"},
		{"invert", func(s *rbacconfigv3.SourcedMetadata) { s.MetadataMatcher.Invert = true },
			"invert is set but not implemented"},
		{"not a string", func(s *rbacconfigv3.SourcedMetadata) {
			s.MetadataMatcher.Value = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}
		}, "present_match is set but not implemented"},
		{"empty string_match", func(s *rbacconfigv3.SourcedMetadata) {
			s.MetadataMatcher.Value = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{}}}
		}, "string matcher has no pattern"},
		{"no matcher", func(s *rbacconfigv3.SourcedMetadata) { s.MetadataMatcher = nil },
			`filter "" is not implemented`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := New(Options{}).Validate("", []proto.Message{meta(c.mut)})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// TestIssuerPrincipalNeedsValidated: the issuer principal alone never
// admits a certificate the listener did not validate (passthrough), nor a
// connection without one.
func TestIssuerPrincipalNeedsValidated(t *testing.T) {
	leaf := pkitest.NewCA(t, "Ops Intermediate").Client("ops").Cert
	sm, err := mtls.CompileStringMatcher(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "CN=Ops Intermediate"}})
	if err != nil {
		t.Fatal(err)
	}
	p := issuerPrincipal{sm}
	if !p.match(&peer{leaf: leaf, validated: true}) {
		t.Fatalf("validated certificate of issuer %q not matched", mtls.Issuer(leaf))
	}
	if p.match(&peer{leaf: leaf}) || p.match(&peer{validated: true}) {
		t.Fatal("matched an unvalidated certificate or no certificate")
	}
}
