package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	mtlsauthv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rbac/principals/mtls_authenticated/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/certplane/certplane/proxy/mtls"
)

// The RBAC HTTP filter, as certplane emits it (envoy/rbac.go): ALLOW
// policies whose permission is any and whose principals read the client
// certificate. The proxy implements exactly these principals, with
// Envoy's semantics, and NACKs any other (docs/resources.md, RBAC).
const (
	rbacFilterName        = "envoy.filters.http.rbac"
	mtlsAuthenticatedName = "envoy.rbac.principals.mtls_authenticated"
	// rbacDeniedDetail is Envoy's response code details for a request no
	// ALLOW policy matched; the request log's detail carries it.
	rbacDeniedDetail = "rbac_access_denied_matched_policy[none]"
)

// rbacConfig is one RBAC config (the filter's, or a route's override).
// A nil *rbacConfig, like an RBAC without rules, enforces nothing.
type rbacConfig struct {
	rules    bool // rules is set: only a matching policy admits
	policies []rbacPolicy
}

type rbacPolicy struct {
	name       string
	principals []principal // any one
}

// peer is what principals read of a request's connection.
type peer struct {
	leaf      *x509.Certificate // nil: no certificate presented
	validated bool              // verified against trusted CAs (peerCertificateValidated)
}

// principal is one RBAC Principal.
type principal interface{ match(p *peer) bool }

// buildRBAC parses an RBAC filter config.
func buildRBAC(r *rbacv3.RBAC) (*rbacConfig, error) {
	rules := r.GetRules()
	if rules == nil {
		return &rbacConfig{}, nil
	}
	if rules.GetAction() != rbacconfigv3.RBAC_ALLOW {
		return nil, fmt.Errorf("rules.action %v is not implemented by certplane proxy (only ALLOW)", rules.GetAction())
	}
	c := &rbacConfig{rules: true}
	names := make([]string, 0, len(rules.GetPolicies()))
	for name := range rules.GetPolicies() {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		pol := rules.GetPolicies()[name]
		if len(pol.GetPermissions()) == 0 || len(pol.GetPrincipals()) == 0 {
			return nil, fmt.Errorf("rules.policies[%s]: permissions and principals are required", name)
		}
		for i, perm := range pol.GetPermissions() {
			if !perm.GetAny() {
				return nil, fmt.Errorf("rules.policies[%s].permissions[%d]: only any is implemented by certplane proxy", name, i)
			}
		}
		p := rbacPolicy{name: name}
		for i, pr := range pol.GetPrincipals() {
			m, err := buildPrincipal(pr)
			if err != nil {
				return nil, fmt.Errorf("rules.policies[%s].principals[%d]: %w", name, i, err)
			}
			p.principals = append(p.principals, m)
		}
		c.policies = append(c.policies, p)
	}
	return c, nil
}

// buildRBACPerRoute parses a route's typed_per_filter_config for the RBAC
// filter. An RBACPerRoute without rbac disables RBAC on the route, as in
// Envoy.
func buildRBACPerRoute(a *anypb.Any) (*rbacConfig, error) {
	var per rbacv3.RBACPerRoute
	if err := a.UnmarshalTo(&per); err != nil {
		return nil, fmt.Errorf("not an RBACPerRoute: %w", err)
	}
	if per.GetRbac() == nil {
		return &rbacConfig{}, nil
	}
	return buildRBAC(per.GetRbac())
}

func buildPrincipal(p *rbacconfigv3.Principal) (principal, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbacconfigv3.Principal_Any:
		if !id.Any {
			return nil, errors.New("any must be true")
		}
		return anyPrincipal{}, nil
	case *rbacconfigv3.Principal_AndIds:
		s, err := buildPrincipalSet(id.AndIds)
		return andPrincipal(s), err
	case *rbacconfigv3.Principal_OrIds:
		s, err := buildPrincipalSet(id.OrIds)
		return orPrincipal(s), err
	case *rbacconfigv3.Principal_NotId:
		inner, err := buildPrincipal(id.NotId)
		if err != nil {
			return nil, fmt.Errorf("not_id: %w", err)
		}
		return notPrincipal{inner}, nil
	case *rbacconfigv3.Principal_Authenticated_:
		a := authenticatedPrincipal{}
		if pn := id.Authenticated.GetPrincipalName(); pn != nil {
			m, err := mtls.CompileStringMatcher(pn)
			if err != nil {
				return nil, fmt.Errorf("authenticated.principal_name: %w", err)
			}
			a.name = m
		}
		return a, nil
	case *rbacconfigv3.Principal_SourcedMetadata:
		return buildIssuerPrincipal(id.SourcedMetadata)
	case *rbacconfigv3.Principal_Custom:
		if id.Custom.GetName() != mtlsAuthenticatedName {
			return nil, fmt.Errorf("custom %q is not implemented by certplane proxy (only %s)", id.Custom.GetName(), mtlsAuthenticatedName)
		}
		var c mtlsauthv3.Config
		if err := id.Custom.GetTypedConfig().UnmarshalTo(&c); err != nil {
			return nil, fmt.Errorf("custom.typed_config is not an mtls_authenticated Config: %w", err)
		}
		m := mtlsPrincipal{}
		switch {
		case c.GetSanMatcher() != nil:
			sm, err := mtls.CompileSANMatcher(c.GetSanMatcher())
			if err != nil {
				return nil, fmt.Errorf("custom mtls_authenticated.san_matcher: %w", err)
			}
			m.san = sm
		case !c.GetAnyValidatedClientCertificate():
			// Envoy refuses this too: no validation configured.
			return nil, errors.New("custom mtls_authenticated: san_matcher or any_validated_client_certificate is required")
		}
		return m, nil
	}
	return nil, errors.New("only any, and_ids, or_ids, not_id, authenticated, custom mtls_authenticated and sourced_metadata certplane.issuer are implemented by certplane proxy")
}

func buildPrincipalSet(s *rbacconfigv3.Principal_Set) ([]principal, error) {
	if len(s.GetIds()) == 0 {
		return nil, errors.New("ids is empty")
	}
	out := make([]principal, 0, len(s.GetIds()))
	for i, p := range s.GetIds() {
		m, err := buildPrincipal(p)
		if err != nil {
			return nil, fmt.Errorf("ids[%d]: %w", i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

type anyPrincipal struct{}

func (anyPrincipal) match(*peer) bool { return true }

type andPrincipal []principal

func (a andPrincipal) match(p *peer) bool {
	for _, m := range a {
		if !m.match(p) {
			return false
		}
	}
	return true
}

type orPrincipal []principal

func (o orPrincipal) match(p *peer) bool {
	for _, m := range o {
		if m.match(p) {
			return true
		}
	}
	return false
}

type notPrincipal struct{ p principal }

func (n notPrincipal) match(p *peer) bool { return !n.p.match(p) }

// authenticatedPrincipal is Envoy's AuthenticatedMatcher: any TLS
// connection (every proxy connection is one) when name is nil; otherwise
// name is tried on every URI SAN, every DNS SAN, then the subject, which
// is "" without a certificate (and is still matched, as in Envoy).
type authenticatedPrincipal struct{ name *mtls.StringMatcher }

func (a authenticatedPrincipal) match(p *peer) bool {
	if a.name == nil {
		return true
	}
	if p.leaf == nil {
		return a.name.Match("")
	}
	for _, v := range mtls.URISANs(p.leaf) {
		if a.name.Match(v) {
			return true
		}
	}
	for _, v := range mtls.DNSSANs(p.leaf) {
		if a.name.Match(v) {
			return true
		}
	}
	return a.name.Match(mtls.Subject(p.leaf))
}

// mtlsPrincipal is mtls_authenticated: a validated certificate, and when
// san is set one of its SANs matching.
type mtlsPrincipal struct{ san *mtls.SANMatcher }

func (m mtlsPrincipal) match(p *peer) bool {
	if p.leaf == nil || !p.validated {
		return false
	}
	return m.san == nil || m.san.MatchCert(p.leaf)
}

// allows reports whether the config admits the peer, and the policy that
// did ("" when no rules apply).
func (c *rbacConfig) allows(p *peer) bool {
	if c == nil || !c.rules {
		return true
	}
	for _, pol := range c.policies {
		for _, pr := range pol.principals {
			if pr.match(p) {
				return true
			}
		}
	}
	return false
}

// authorize runs the chain's RBAC filter on a request whose route (nil
// when none matched) was picked, before anything answers it: in Envoy the
// filter runs before the router, which sends direct responses, 404s and
// upstream requests. The route's RBACPerRoute replaces the filter's
// config. A denied request gets 403, is logged with Envoy's details and
// counted by listener and route.
func (lr *listenerRuntime) authorize(ex *exchange, cs *tls.ConnectionState, sw *statusWriter) bool {
	hcm := ex.chain.hcm
	if !hcm.rbacSet {
		return true
	}
	cfg, label := hcm.rbac, ""
	if ex.route != nil {
		label = ex.route.label()
		if ex.route.rbac != nil {
			cfg = ex.route.rbac
		}
	}
	p := &peer{validated: ex.chain.verifier.Validates()}
	if cs != nil && len(cs.PeerCertificates) > 0 {
		p.leaf = cs.PeerCertificates[0]
	}
	if cfg.allows(p) {
		return true
	}
	lr.p.metrics.rbacDenied.WithLabelValues(lr.name, label).Inc()
	sw.fail(http.StatusForbidden, "RBAC: access denied")
	sw.detail = rbacDeniedDetail
	return false
}
