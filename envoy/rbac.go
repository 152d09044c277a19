package envoy

import (
	"fmt"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	mtlsauthv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rbac/principals/mtls_authenticated/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/certplane/certplane/config"
)

// RBAC names. A denied request gets 403 with the response code details
// RBACDeniedDetails: the policies are ALLOW policies, so none matched.
const (
	RBACName              = "envoy.filters.http.rbac"
	MtlsAuthenticatedName = "envoy.rbac.principals.mtls_authenticated"
	RBACDeniedDetails     = "rbac_access_denied_matched_policy[none]"
	// Policy names: the listener's client_auth.subjects, a route's allow.
	RBACPolicySubjects = "subjects"
	RBACPolicyAllow    = "allow"
)

// NeedsRBAC reports whether l authorizes clients by identity: a
// client_auth.subjects list or a route with allow.
func NeedsRBAC(l *config.Listener) bool {
	if len(l.ClientAuth.Subjects) > 0 {
		return true
	}
	for _, r := range l.Routes {
		if len(r.Allow) > 0 {
			return true
		}
	}
	return false
}

// RBACFilter is the filter-level RBAC config of l's connection manager:
// its client_auth.subjects as one ALLOW policy, or no rules (every request
// passes) when it has none. Routes with allow replace it (RBACPerRoute),
// and repeat the subjects there.
func RBACFilter(l *config.Listener) (*rbacv3.RBAC, error) {
	if len(l.ClientAuth.Subjects) == 0 {
		return &rbacv3.RBAC{}, nil
	}
	subjects, err := identityPrincipals(l.ClientAuth.Subjects)
	if err != nil {
		return nil, fmt.Errorf("listener %q: client_auth.subjects: %w", l.Name, err)
	}
	return &rbacv3.RBAC{Rules: allowPolicy(RBACPolicySubjects, subjects)}, nil
}

// RBACPerRoute is route r's allow list, for typed_per_filter_config; nil
// when r has none. It replaces the filter-level config for r, so the
// listener's subjects are required too (and_ids) when it has them.
func RBACPerRoute(l *config.Listener, r config.Route) (*rbacv3.RBACPerRoute, error) {
	if len(r.Allow) == 0 {
		return nil, nil
	}
	allow, err := identityPrincipals(r.Allow)
	if err != nil {
		return nil, fmt.Errorf("listener %q: route %s: allow: %w", l.Name, r.PathPrefix, err)
	}
	if len(l.ClientAuth.Subjects) > 0 {
		subjects, err := identityPrincipals(l.ClientAuth.Subjects)
		if err != nil {
			return nil, fmt.Errorf("listener %q: client_auth.subjects: %w", l.Name, err)
		}
		allow = []*rbacconfigv3.Principal{andIDs(orIDs(subjects), orIDs(allow))}
	}
	return &rbacv3.RBACPerRoute{Rbac: &rbacv3.RBAC{Rules: allowPolicy(RBACPolicyAllow, allow)}}, nil
}

// allowPolicy admits a request whose connection matches any of principals.
func allowPolicy(name string, principals []*rbacconfigv3.Principal) *rbacconfigv3.RBAC {
	return &rbacconfigv3.RBAC{
		Action: rbacconfigv3.RBAC_ALLOW,
		Policies: map[string]*rbacconfigv3.Policy{name: {
			Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Any{Any: true}}},
			Principals:  principals,
		}},
	}
}

func identityPrincipals(ms []config.IdentityMatcher) ([]*rbacconfigv3.Principal, error) {
	out := make([]*rbacconfigv3.Principal, 0, len(ms))
	for i, m := range ms {
		p, err := IdentityPrincipal(m)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// IdentityPrincipal is the RBAC principal that admits exactly the verified
// client certificates m matches, and nothing Envoy would read more loosely:
//   - dns, uri, email, ip: the mtls_authenticated principal with a SAN
//     matcher of that type, the matcher of match_typed_subject_alt_names
//     (each SAN of the type on its own; a dns exact matches a wildcard SAN
//     as in the validation context).
//   - subject: no principal reads the subject alone. authenticated's
//     principal_name tries every URI SAN, every DNS SAN, then the subject
//     (RFC 2253), so it is joined with "no URI SAN and no DNS SAN
//     matches" and with a validated certificate (authenticated alone
//     matches any TLS connection). A certificate whose URI or DNS SAN
//     matches the subject pattern too is therefore refused: narrower than
//     written, never wider.
//   - issuer: a metadata principal Envoy never matches and the bundled
//     proxy reads as the issuer DN (issuerPrincipal); config serves it
//     only to certplane proxies.
func IdentityPrincipal(m config.IdentityMatcher) (*rbacconfigv3.Principal, error) {
	sm, err := identityStringMatcher(m)
	if err != nil {
		return nil, err
	}
	switch m.Type {
	case config.IdentityDNS, config.IdentityURI, config.IdentityEmail, config.IdentityIP:
		return mtlsPrincipal(&mtlsauthv3.Config{SanMatcher: &tlsv3.SubjectAltNameMatcher{
			SanType: sanTypes[m.Type.SANType()], Matcher: sm,
		}})
	case config.IdentitySubject:
		validated, err := mtlsPrincipal(&mtlsauthv3.Config{AnyValidatedClientCertificate: true})
		if err != nil {
			return nil, err
		}
		uri, err := mtlsPrincipal(&mtlsauthv3.Config{SanMatcher: &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: sm}})
		if err != nil {
			return nil, err
		}
		dns, err := mtlsPrincipal(&mtlsauthv3.Config{SanMatcher: &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: sm}})
		if err != nil {
			return nil, err
		}
		authenticated := &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Authenticated_{
			Authenticated: &rbacconfigv3.Principal_Authenticated{PrincipalName: sm},
		}}
		return andIDs(validated, authenticated, notID(uri), notID(dns)), nil
	case config.IdentityIssuer:
		return issuerPrincipal(sm)
	}
	return nil, fmt.Errorf("identity type %s cannot be expressed in Envoy RBAC", m.Type)
}

// identityStringMatcher is m's pattern as a StringMatcher.
func identityStringMatcher(m config.IdentityMatcher) (*matcherv3.StringMatcher, error) {
	san, err := SANMatcher(config.SANMatcher{Type: config.SANURI, Exact: m.Exact, Prefix: m.Prefix, Suffix: m.Suffix, Contains: m.Contains, Regex: m.Regex})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Type, err)
	}
	return san.GetMatcher(), nil
}

func mtlsPrincipal(c *mtlsauthv3.Config) (*rbacconfigv3.Principal, error) {
	a, err := typed(c)
	if err != nil {
		return nil, err
	}
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Custom{
		Custom: &corev3.TypedExtensionConfig{Name: MtlsAuthenticatedName, TypedConfig: a},
	}}, nil
}

func andIDs(ids ...*rbacconfigv3.Principal) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_AndIds{AndIds: &rbacconfigv3.Principal_Set{Ids: ids}}}
}

func orIDs(ids []*rbacconfigv3.Principal) *rbacconfigv3.Principal {
	if len(ids) == 1 {
		return ids[0]
	}
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_OrIds{OrIds: &rbacconfigv3.Principal_Set{Ids: ids}}}
}

func notID(p *rbacconfigv3.Principal) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_NotId{NotId: p}}
}

// routeRBAC sets rt's typed_per_filter_config to r's allow list. Its errors
// are reported first by HTTPConnectionManager, which builds the same
// config; should one happen here all the same, the route admits nobody.
func routeRBAC(l *config.Listener, r config.Route, rt *routev3.Route) {
	per, err := RBACPerRoute(l, r)
	if per == nil && err == nil {
		return
	}
	var a *anypb.Any
	if err == nil {
		a, err = typed(per)
	}
	if err != nil {
		a, _ = typed(&rbacv3.RBACPerRoute{Rbac: &rbacv3.RBAC{Rules: &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_ALLOW}}})
	}
	rt.TypedPerFilterConfig = map[string]*anypb.Any{RBACName: a}
}

// rbacHTTPFilter is the RBAC filter of l's connection manager, nil when l
// authorizes nobody by identity. It checks every route's allow list too.
func rbacHTTPFilter(l *config.Listener) (*hcmv3.HttpFilter, error) {
	if !NeedsRBAC(l) {
		return nil, nil
	}
	for _, r := range l.Routes {
		if _, err := RBACPerRoute(l, r); err != nil {
			return nil, err
		}
	}
	f, err := RBACFilter(l)
	if err != nil {
		return nil, err
	}
	a, err := typed(f)
	if err != nil {
		return nil, err
	}
	return &hcmv3.HttpFilter{Name: RBACName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}}, nil
}
