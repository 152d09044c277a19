package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// RouteTimeoutDefault bounds one request end to end when a route sets no
// timeout (Envoy's own default is 15s, short for payment backends).
const RouteTimeoutDefault = 60 * time.Second

// MaxRetryAttempts caps retries.attempts: each retry is another backend
// request for one client request, and Envoy's default circuit breaker
// allows only 3 retries in flight per cluster anyway.
const MaxRetryAttempts = 5

// RetryOn is one retries.on condition, named as Envoy's retry_on names it.
type RetryOn uint8

// Retry conditions. Only connect-failure is safe for any method: the
// request never reached a backend. reset and 5xx replay a request a
// backend may have acted on.
const (
	RetryConnectFailure RetryOn = iota // the connection to the backend failed
	RetryReset                         // no response: disconnect or reset (includes connect failures)
	Retry5xx                           // a 5xx response or none at all (includes reset)
)

var retryOnNames = enumNames{"connect-failure", "reset", "5xx"}

func (r RetryOn) String() string { return retryOnNames.name(uint8(r), "RetryOn") }

// MarshalText gives the YAML spelling.
func (r RetryOn) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// ParseRetryOn parses one retries.on entry.
func ParseRetryOn(s string) (RetryOn, error) {
	if v, ok := retryOnNames.parse(s); ok {
		return RetryOn(v), nil
	}
	return 0, fmt.Errorf("%q: want connect-failure, reset or 5xx", s)
}

// DefaultRetries is the policy of a route without retries: one retry, on
// another host, when the connection failed. The request was never sent,
// so this is safe for every method (Envoy retries connect failures
// whatever the method).
var DefaultRetries = RetryPolicy{Attempts: 1, On: []RetryOn{RetryConnectFailure}}

// EffectiveRetries is r's retry policy with the default applied.
func (r Route) EffectiveRetries() RetryPolicy {
	if r.Retries == nil {
		return DefaultRetries
	}
	return *r.Retries
}

// EffectiveTimeout is r's timeout with the default applied; 0 is none.
func (r Route) EffectiveTimeout() time.Duration {
	if r.Timeout == nil {
		return RouteTimeoutDefault
	}
	return *r.Timeout
}

// LBPolicy is how a backend spreads requests over its endpoints.
type LBPolicy uint8

// Load balancing policies. The zero value is round robin, the default.
const (
	LBRoundRobin   LBPolicy = iota
	LBLeastRequest          // power of two choices: the less loaded of two random hosts
	LBRandom
)

var lbPolicyNames = enumNames{"round_robin", "least_request", "random"}

func (p LBPolicy) String() string { return lbPolicyNames.name(uint8(p), "LBPolicy") }

// MarshalText gives the YAML spelling.
func (p LBPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// ParseLBPolicy parses a backend's lb_policy; "" is round robin.
func ParseLBPolicy(s string) (LBPolicy, error) {
	if s == "" {
		return LBRoundRobin, nil
	}
	if v, ok := lbPolicyNames.parse(s); ok {
		return LBPolicy(v), nil
	}
	return 0, fmt.Errorf("lb_policy %q: want round_robin, least_request or random", s)
}

// refusedMatchHeaders are request headers a route may not match on, each
// with the reason check prints. Both data planes set, replace or strip
// them before or around routing, so a match on them would either never
// hold, hold on a value the client forged, or differ between Envoy and
// certplane proxy.
var refusedMatchHeaders = map[string]string{
	"host":                    "use the route's host field (Envoy routes on :authority, which HTTP/1.1's Host becomes)",
	"x-forwarded-client-cert": "certplane removes it from every request and sets its own from the verified certificate",
	"x-forwarded-for":         "the connection manager appends the client address to it (use_remote_address)",
	"x-forwarded-proto":       "the connection manager overwrites it with the listener's scheme",
	"x-request-id":            "Envoy generates or replaces it",
	"via":                     "certplane's loop guard owns it",
	"connection":              "a hop-by-hop header, removed by the codec",
	"keep-alive":              "a hop-by-hop header, removed by the codec",
	"proxy-connection":        "a hop-by-hop header, removed by the codec",
	"te":                      "a hop-by-hop header, removed by the codec",
	"transfer-encoding":       "a hop-by-hop header, removed by the codec",
	"upgrade":                 "a hop-by-hop header, handled by the codec",
}

// refusedMatchPrefixes are header name prefixes refused the same way.
var refusedMatchPrefixes = []struct{ prefix, why string }{
	{"x-amzn-mtls-clientcert", "certplane removes every such header from requests and sets its own from the verified certificate"},
	{"x-envoy-", "Envoy strips or sets its internal headers"},
}

// allowedPseudoHeaders are the pseudo-headers a route may match on.
// :authority and :path have their own fields (host, path, path_prefix),
// and :scheme is always https on a certplane listener.
var allowedPseudoHeaders = []string{":method"}

// convertRoute converts route i of a listener, whose node is n (its line
// rline), and checks it against the routes before it.
func convertRoute(i int, r *rawRoute, n *yaml.Node, rline int, prev []Route) (Route, *itemErr) {
	at := func(key string) int { return pathLine(n, rline, key) }
	out := Route{Backend: r.Backend}
	switch {
	case r.Path != nil && r.PathPrefix != nil:
		return out, errAt(rline, "routes[%d]: set one of path (exact) and path_prefix, not both", i)
	case r.Path != nil:
		if !strings.HasPrefix(*r.Path, "/") {
			return out, errAt(at("path"), "routes[%d]: path %q must start with /", i, *r.Path)
		}
		out.Path = *r.Path
	case r.PathPrefix != nil:
		if !strings.HasPrefix(*r.PathPrefix, "/") {
			return out, errAt(at("path_prefix"), "routes[%d]: path_prefix %q must start with /", i, *r.PathPrefix)
		}
		out.PathPrefix = *r.PathPrefix
	default:
		return out, errAt(rline, "routes[%d]: path (exact) or path_prefix is required", i)
	}
	if r.Backend == "" {
		return out, errAt(rline, "routes[%d]: backend is required", i)
	}
	if r.Host != "" {
		h, err := checkRouteHost(r.Host)
		if err != nil {
			return out, errAt(at("host"), "routes[%d]: host %q: %v", i, r.Host, err)
		}
		out.Host = h
	}
	hnode := mapValue(n, "headers")
	for j, h := range r.Headers {
		m, err := checkHeaderMatch(h, out.Headers)
		if err != nil {
			return out, errAt(lineOf(seqItem(hnode, j), at("headers")), "routes[%d]: headers[%d]: %v", i, j, err)
		}
		out.Headers = append(out.Headers, m)
	}
	var err error
	if out.Timeout, err = routeDuration(r.Timeout); err != nil {
		return out, errAt(at("timeout"), "routes[%d]: timeout %v", i, err)
	}
	if out.IdleTimeout, err = routeDuration(r.IdleTimeout); err != nil {
		return out, errAt(at("idle_timeout"), "routes[%d]: idle_timeout %v", i, err)
	}
	if r.Retries != nil {
		rp, err := checkRetries(r.Retries)
		if err != nil {
			return out, errAt(at("retries"), "routes[%d]: retries: %v", i, err)
		}
		out.Retries = &rp
	}
	for j, p := range prev {
		if shadows(p, out) {
			return out, errAt(rline, "routes[%d]: routes[%d] above matches every request this route matches (%s), so this route would never match", i, j, describeMatch(out))
		}
	}
	return out, nil
}

// checkRouteHost checks a route's host: a DNS name or IPv4 address, or
// "*." and a DNS name (Envoy's suffix wildcard). No port: certplane routes
// ignore the port of the request's authority (ignore_port_in_host_matching).
func checkRouteHost(h string) (string, error) {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "*" {
		return "", fmt.Errorf("omit host for a route that serves every host")
	}
	if strings.Contains(h, ":") {
		return "", fmt.Errorf("no port: the port of the request's authority is ignored when matching hosts")
	}
	name, wild := strings.CutPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return "", fmt.Errorf("a wildcard is allowed only as a whole first label, as in *.example.com")
	}
	if !validDNSName(name) {
		return "", fmt.Errorf("want a DNS name or *. and a DNS name")
	}
	if wild {
		return "*." + name, nil
	}
	return name, nil
}

// checkHeaderMatch checks one headers entry against those before it.
func checkHeaderMatch(h rawHeaderMatch, prev []HeaderMatch) (HeaderMatch, error) {
	name := strings.ToLower(h.Name)
	if name == "" {
		return HeaderMatch{}, fmt.Errorf("name is required")
	}
	if h.Exact == nil || *h.Exact == "" {
		return HeaderMatch{}, fmt.Errorf("header %q: exact is required and must not be empty", h.Name)
	}
	if strings.HasPrefix(name, ":") {
		if !slices.Contains(allowedPseudoHeaders, name) {
			return HeaderMatch{}, fmt.Errorf("pseudo-header %q cannot be matched: only :method (use host for :authority, path or path_prefix for :path; :scheme is always https)", h.Name)
		}
	} else if !validHeaderName(name) {
		return HeaderMatch{}, fmt.Errorf("%q is not a header name (letters, digits and !#$%%&'*+-.^`|~)", h.Name)
	}
	if strings.Contains(name, "_") {
		return HeaderMatch{}, fmt.Errorf("header %q has an underscore: such headers are dropped or refused before routing (http.headers_with_underscores), so it would never match", h.Name)
	}
	if why, refused := refusedMatchHeaders[name]; refused {
		return HeaderMatch{}, fmt.Errorf("header %q cannot be matched: %s", h.Name, why)
	}
	for _, p := range refusedMatchPrefixes {
		if strings.HasPrefix(name, p.prefix) {
			return HeaderMatch{}, fmt.Errorf("header %q cannot be matched: %s", h.Name, p.why)
		}
	}
	for _, q := range prev {
		if q.Name == name {
			return HeaderMatch{}, fmt.Errorf("header %q is listed twice", h.Name)
		}
	}
	return HeaderMatch{Name: name, Exact: *h.Exact}, nil
}

// validHeaderName checks an HTTP field name (RFC 9110 token).
func validHeaderName(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// routeDuration parses an optional timeout: nil stays nil, "0s" disables.
func routeDuration(s *string) (*time.Duration, error) {
	if s == nil {
		return nil, nil
	}
	d, err := time.ParseDuration(*s)
	if err != nil || d < 0 {
		return nil, fmt.Errorf("%q: want a duration such as 30s or 500ms (0s disables it)", *s)
	}
	if d%time.Millisecond != 0 {
		return nil, fmt.Errorf("%q: Envoy takes timeouts in whole milliseconds", *s)
	}
	return &d, nil
}

// checkRetries checks a route's retries: attempts defaults to 1 and on to
// [connect-failure].
func checkRetries(r *rawRetries) (RetryPolicy, error) {
	p := RetryPolicy{Attempts: 1}
	if r.Attempts != nil {
		p.Attempts = *r.Attempts
	}
	if p.Attempts > MaxRetryAttempts {
		return p, fmt.Errorf("attempts %d: at most %d (each retry is one more backend request)", p.Attempts, MaxRetryAttempts)
	}
	for _, s := range r.On {
		on, err := ParseRetryOn(s)
		if err != nil {
			return p, fmt.Errorf("on: %v", err)
		}
		if slices.Contains(p.On, on) {
			return p, fmt.Errorf("on: %q is listed twice", s)
		}
		p.On = append(p.On, on)
	}
	if len(p.On) == 0 {
		if r.On != nil {
			return p, fmt.Errorf("on is empty; omit it for [connect-failure], or set attempts: 0 for no retries")
		}
		p.On = []RetryOn{RetryConnectFailure}
	}
	return p, nil
}

// shadows reports whether every request that route b matches is matched
// by route a first: a's host covers b's, a's path is the same, and a
// needs no header b does not.
func shadows(a, b Route) bool {
	if !hostCovers(a.Host, b.Host) || a.Path != b.Path || a.PathPrefix != b.PathPrefix {
		return false
	}
	for _, h := range a.Headers {
		if !slices.Contains(b.Headers, h) {
			return false
		}
	}
	return true
}

// hostCovers reports whether every host that pattern b matches is matched
// by pattern a ("" is every host).
func hostCovers(a, b string) bool {
	switch {
	case a == "" || a == b:
		return true
	case b == "":
		return false
	}
	suffix, wild := strings.CutPrefix(a, "*")
	return wild && strings.HasSuffix(b, suffix) && len(b) > len(suffix)
}

// HostCovers reports whether route host pattern a matches every host
// pattern b matches ("" is every host): the envoy builder copies a's
// routes into b's virtual host.
func HostCovers(a, b string) bool { return hostCovers(a, b) }

func describeMatch(r Route) string {
	var parts []string
	if r.Host != "" {
		parts = append(parts, "host "+r.Host)
	}
	if r.Path != "" {
		parts = append(parts, "path "+r.Path)
	} else {
		parts = append(parts, "path_prefix "+r.PathPrefix)
	}
	for _, h := range r.Headers {
		parts = append(parts, fmt.Sprintf("%s: %s", h.Name, h.Exact))
	}
	return strings.Join(parts, ", ")
}
