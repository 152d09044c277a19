package proxy

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	mtlsauthv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rbac/principals/mtls_authenticated/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestRBACNotImplementedNACKs: RBAC shapes certplane does not emit are
// refused, never ignored: each would change who is admitted.
func TestRBACNotImplementedNACKs(t *testing.T) {
	policy := func(p *rbacconfigv3.Principal) *rbacconfigv3.RBAC {
		return &rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{"p": {
			Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Any{Any: true}}},
			Principals:  []*rbacconfigv3.Principal{p},
		}}}
	}
	route := func(per proto.Message, key string) *routev3.RouteConfiguration {
		a, err := anypb.New(per)
		if err != nil {
			t.Fatal(err)
		}
		return &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
			Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match:                &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action:               &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
				TypedPerFilterConfig: map[string]*anypb.Any{key: a},
			}},
		}}}
	}
	mtlsAny := func(c *mtlsauthv3.Config) *rbacconfigv3.Principal {
		a, _ := anypb.New(c)
		return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Custom{Custom: &corev3.TypedExtensionConfig{Name: mtlsAuthenticatedName, TypedConfig: a}}}
	}
	deny := policy(mtlsAny(&mtlsauthv3.Config{AnyValidatedClientCertificate: true}))
	deny.Action = rbacconfigv3.RBAC_DENY
	for _, c := range []struct {
		name string
		rc   *routev3.RouteConfiguration
		want string
	}{
		{"DENY action", route(&rbacv3.RBACPerRoute{Rbac: &rbacv3.RBAC{Rules: deny}}, rbacFilterName),
			"action value DENY is not implemented"},
		{"header principal", route(&rbacv3.RBACPerRoute{Rbac: &rbacv3.RBAC{Rules: policy(&rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Header{
			Header: &routev3.HeaderMatcher{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}})}}, rbacFilterName),
			"principals[0].header is set but not implemented"},
		{"matcher tree", route(&rbacv3.RBACPerRoute{Rbac: &rbacv3.RBAC{ShadowRulesStatPrefix: "x"}}, rbacFilterName),
			"shadow_rules_stat_prefix is set but not implemented"},
		{"other filter's per-route config", route(&rbacv3.RBACPerRoute{}, "envoy.filters.http.lua"),
			"typed_per_filter_config[envoy.filters.http.lua] is not implemented by certplane proxy"},
		{"mtls_authenticated without validation", route(&rbacv3.RBACPerRoute{Rbac: &rbacv3.RBAC{Rules: policy(mtlsAny(&mtlsauthv3.Config{}))}}, rbacFilterName),
			"san_matcher or any_validated_client_certificate is required"},
		{"unknown custom principal", route(&rbacv3.RBACPerRoute{Rbac: &rbacv3.RBAC{Rules: policy(&rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Custom{
			Custom: &corev3.TypedExtensionConfig{Name: "x.principal", TypedConfig: mustAny(&mtlsauthv3.Config{SanMatcher: nil, AnyValidatedClientCertificate: true})}}})}}, rbacFilterName),
			`custom "x.principal" is not implemented`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := New(Options{}).Validate("", []proto.Message{c.rc})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}
