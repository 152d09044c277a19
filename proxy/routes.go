package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/certplane/certplane/proxy/mtls"
)

// envoyDefaultRouteTimeout is Envoy's route timeout when none is set.
const envoyDefaultRouteTimeout = 15 * time.Second

// routeTable is a parsed RouteConfiguration.
type routeTable struct {
	name   string
	vhosts []*vhost
	// ignorePort is ignore_port_in_host_matching: the port of the
	// authority is left out when picking the virtual host.
	ignorePort bool
	headers    headerOps // request_headers_to_remove / _to_add of the configuration
	version    string
}

type vhost struct {
	name    string
	domains []string
	routes  []*route
	headers headerOps
}

type route struct {
	prefix string
	// path, when exact is set, is match.path: the whole path must equal it.
	path  string
	exact bool
	// headers must all match (RouteMatch.headers).
	headers []*headerMatcher
	// presented, when set, is RouteMatch.tls_context.presented: whether
	// the client must (true) or must not (false) have sent a certificate.
	presented *bool
	// Exactly one of cluster and direct is set.
	cluster string
	direct  *directResponse
	timeout time.Duration // 0: no timeout (Envoy's "0s" disables it)
	// idleTimeout is route.idle_timeout; nil keeps the connection
	// manager's stream_idle_timeout, 0 disables it.
	idleTimeout *time.Duration
	retry       *retryPolicy // nil: no retries
	ops         headerOps
	// name is Route.name; rbac is typed_per_filter_config's RBACPerRoute
	// (nil: the filter's own config applies).
	name string
	rbac *rbacConfig
}

// label names the route in metrics: its name, else its path.
func (r *route) label() string {
	if r.name != "" {
		return r.name
	}
	if r.exact {
		return r.path
	}
	return r.prefix
}

// directResponse is a route's direct_response: the proxy answers itself.
type directResponse struct {
	status int
	body   string
}

// headerOps is one level's request_headers_to_remove and
// request_headers_to_add; removals run first (Envoy's HeaderParser).
type headerOps struct {
	remove []string
	add    []headerAdd
}

// headerAdd is one request_headers_to_add entry.
type headerAdd struct {
	key       string
	format    string
	action    corev3.HeaderValueOption_HeaderAppendAction
	keepEmpty bool
}

// headerMatcher is a route's HeaderMatcher. Envoy joins repeated values of
// the header with "," and matches the result; a missing header matches
// nothing (invert_match included) unless treat_missing_header_as_empty.
type headerMatcher struct {
	name           string
	str            *mtls.StringMatcher // nil: present_match
	present        bool
	invert         bool
	missingAsEmpty bool
}

// requestFacts is what route matching reads besides the path and host.
type requestFacts struct {
	header    http.Header
	method    string // :method
	authority string // :authority, as received
	presented bool   // the client sent a certificate
}

// buildRoutes parses and checks a RouteConfiguration.
func buildRoutes(rc *routev3.RouteConfiguration) (*routeTable, error) {
	t := &routeTable{name: rc.GetName(), ignorePort: rc.GetIgnorePortInHostMatching()}
	if len(rc.GetVirtualHosts()) == 0 {
		return nil, errors.New("virtual_hosts is empty")
	}
	for i, vh := range rc.GetVirtualHosts() {
		v, err := buildVhost(vh)
		if err != nil {
			return nil, fmt.Errorf("virtual_hosts[%d].%w", i, err)
		}
		t.vhosts = append(t.vhosts, v)
	}
	ops, err := buildHeaderOps(rc.GetRequestHeadersToRemove(), rc.GetRequestHeadersToAdd())
	if err != nil {
		return nil, err
	}
	t.headers = ops
	return t, nil
}

func buildVhost(vh *routev3.VirtualHost) (*vhost, error) {
	v := &vhost{name: vh.GetName()}
	if len(vh.GetDomains()) == 0 {
		return nil, errors.New("domains is empty")
	}
	for _, d := range vh.GetDomains() {
		v.domains = append(v.domains, strings.ToLower(d))
	}
	for j, r := range vh.GetRoutes() {
		rt, err := buildRoute(r)
		if err != nil {
			return nil, fmt.Errorf("routes[%d].%w", j, err)
		}
		v.routes = append(v.routes, rt)
	}
	ops, err := buildHeaderOps(vh.GetRequestHeadersToRemove(), vh.GetRequestHeadersToAdd())
	if err != nil {
		return nil, err
	}
	v.headers = ops
	return v, nil
}

func buildRoute(r *routev3.Route) (*route, error) {
	rt := &route{timeout: envoyDefaultRouteTimeout}
	switch p := r.GetMatch().GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		rt.prefix = p.Prefix
	case *routev3.RouteMatch_Path:
		rt.path, rt.exact = p.Path, true
	default:
		return nil, errors.New("match: only prefix and path are implemented by certplane proxy")
	}
	rt.name = r.GetName()
	for name, cfg := range r.GetTypedPerFilterConfig() {
		if name != rbacFilterName {
			return nil, fmt.Errorf("typed_per_filter_config[%s] is not implemented by certplane proxy (only %s)", name, rbacFilterName)
		}
		rc, err := buildRBACPerRoute(cfg)
		if err != nil {
			return nil, fmt.Errorf("typed_per_filter_config[%s]: %w", name, err)
		}
		rt.rbac = rc
	}
	for k, h := range r.GetMatch().GetHeaders() {
		m, err := buildHeaderMatcher(h)
		if err != nil {
			return nil, fmt.Errorf("match.headers[%d]: %w", k, err)
		}
		rt.headers = append(rt.headers, m)
	}
	if tc := r.GetMatch().GetTlsContext(); tc != nil {
		if tc.GetPresented() == nil {
			return nil, errors.New("match.tls_context: presented is not set")
		}
		v := tc.GetPresented().GetValue()
		rt.presented = &v
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		if a.Route.GetCluster() == "" {
			return nil, errors.New("route.cluster is empty")
		}
		rt.cluster = a.Route.GetCluster()
		if a.Route.GetTimeout() != nil {
			if err := a.Route.GetTimeout().CheckValid(); err != nil {
				return nil, fmt.Errorf("route.timeout: %w", err)
			}
			rt.timeout = a.Route.GetTimeout().AsDuration()
		}
		if it := a.Route.GetIdleTimeout(); it != nil {
			if err := it.CheckValid(); err != nil || it.AsDuration() < 0 {
				return nil, errors.New("route.idle_timeout must be a duration of 0 or more")
			}
			d := it.AsDuration()
			rt.idleTimeout = &d
		}
		if rp := a.Route.GetRetryPolicy(); rp != nil {
			p, err := buildRetryPolicy(rp)
			if err != nil {
				return nil, fmt.Errorf("route.retry_policy: %w", err)
			}
			rt.retry = p
		}
	case *routev3.Route_DirectResponse:
		d, err := buildDirectResponse(a.DirectResponse)
		if err != nil {
			return nil, fmt.Errorf("direct_response: %w", err)
		}
		rt.direct = d
	default:
		return nil, errors.New("route or direct_response is required")
	}
	ops, err := buildHeaderOps(r.GetRequestHeadersToRemove(), r.GetRequestHeadersToAdd())
	if err != nil {
		return nil, err
	}
	rt.ops = ops
	return rt, nil
}

func buildHeaderMatcher(h *routev3.HeaderMatcher) (*headerMatcher, error) {
	name := strings.ToLower(h.GetName())
	if name == "" {
		return nil, errors.New("name is empty")
	}
	if strings.HasPrefix(name, ":") && !slices.Contains(matchedPseudoHeaders, name) {
		return nil, fmt.Errorf("pseudo-header %q is not implemented by certplane proxy", name)
	}
	m := &headerMatcher{name: name, invert: h.GetInvertMatch(), missingAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := mtls.CompileStringMatcher(s.StringMatch)
		if err != nil {
			return nil, fmt.Errorf("string_match: %w", err)
		}
		m.str = sm
	case *routev3.HeaderMatcher_PresentMatch:
		m.present = s.PresentMatch
	default:
		return nil, errors.New("only string_match and present_match are implemented by certplane proxy")
	}
	return m, nil
}

func buildDirectResponse(d *routev3.DirectResponseAction) (*directResponse, error) {
	if d.GetStatus() < 200 || d.GetStatus() > 599 {
		return nil, fmt.Errorf("status %d is out of range 200..599", d.GetStatus())
	}
	out := &directResponse{status: int(d.GetStatus())}
	switch b := d.GetBody().GetSpecifier().(type) {
	case nil:
	case *corev3.DataSource_InlineString:
		out.body = b.InlineString
	case *corev3.DataSource_InlineBytes:
		out.body = string(b.InlineBytes)
	default:
		return nil, errors.New("body: only inline_string and inline_bytes are implemented by certplane proxy")
	}
	return out, nil
}

func buildHeaderOps(remove []string, add []*corev3.HeaderValueOption) (headerOps, error) {
	var ops headerOps
	for _, h := range remove {
		ops.remove = append(ops.remove, strings.ToLower(h))
	}
	for i, h := range add {
		key := strings.ToLower(h.GetHeader().GetKey())
		if key == "" {
			return ops, fmt.Errorf("request_headers_to_add[%d].header.key is empty", i)
		}
		if err := mtls.CheckHeaderFormat(h.GetHeader().GetValue()); err != nil {
			return ops, fmt.Errorf("request_headers_to_add[%d] %q: %w", i, key, err)
		}
		ops.add = append(ops.add, headerAdd{key: key, format: h.GetHeader().GetValue(), action: h.GetAppendAction(), keepEmpty: h.GetKeepEmptyValue()})
	}
	return ops, nil
}

// match picks the route for a request as Envoy does: the virtual host by
// Host (exact, then suffix and prefix wildcards, then "*"), then the first
// route whose prefix matches the (escaped, normalized) path and whose
// header and TLS matchers hold.
func (t *routeTable) match(host, path string, f requestFacts) (*vhost, *route) {
	if t.ignorePort {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	host = strings.ToLower(host)
	v := t.vhost(host)
	if v == nil {
		return nil, nil
	}
	for _, r := range v.routes {
		if r.matches(path, f) {
			return v, r
		}
	}
	return v, nil
}

func (r *route) matches(path string, f requestFacts) bool {
	if r.exact {
		if path != r.path {
			return false
		}
	} else if !strings.HasPrefix(path, r.prefix) {
		return false
	}
	if r.presented != nil && *r.presented != f.presented {
		return false
	}
	for _, h := range r.headers {
		if !h.matches(f) {
			return false
		}
	}
	return true
}

func (m *headerMatcher) matches(f requestFacts) bool {
	vals := f.values(m.name)
	if m.str == nil {
		return (len(vals) > 0) == m.present != m.invert
	}
	if len(vals) == 0 && !m.missingAsEmpty {
		return false
	}
	return m.str.Match(strings.Join(vals, ",")) != m.invert
}

func (t *routeTable) vhost(host string) *vhost {
	var best *vhost
	bestLen := -1
	var star *vhost
	for _, v := range t.vhosts {
		for _, d := range v.domains {
			switch {
			case d == "*":
				if star == nil {
					star = v
				}
			case d == host:
				return v
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(host) > len(d)-1:
				if len(d) > bestLen {
					best, bestLen = v, len(d)
				}
			case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]) && len(host) > len(d)-1:
				if len(d) > bestLen {
					best, bestLen = v, len(d)
				}
			}
		}
	}
	if best != nil {
		return best
	}
	return star
}

// matchedPseudoHeaders are the pseudo-headers a route's header matcher may
// name: the request's method and authority (:scheme is https on every
// listener and :path has the path matchers).
var matchedPseudoHeaders = []string{":method", ":authority", ":scheme"}

// values are the request's values of header name, pseudo-headers included.
func (f requestFacts) values(name string) []string {
	switch name {
	case ":method":
		return []string{f.method}
	case ":authority":
		return []string{f.authority}
	case ":scheme":
		return []string{"https"}
	}
	return f.header.Values(name)
}
