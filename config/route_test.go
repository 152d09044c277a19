package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/config"
)

// routeYAML is a listener whose routes are the given YAML lines (each
// indented as one routes entry); the first route is on line 6.
func routeYAML(routes ...string) string {
	return "listeners:\n  - name: a\n    address: 0.0.0.0:1\n    certificates: [a]\n    routes:\n" +
		"      - " + strings.Join(routes, "\n      - ") + "\n"
}

func TestRouteFields(t *testing.T) {
	cf, err := config.ParseConfig("c.yaml", []byte(routeYAML(
		`{host: API.Example.com, path: /v1/pay, backend: b, timeout: 5s, idle_timeout: 0s, retries: {attempts: 2, on: [reset, 5xx]}}`,
		`{host: "*.example.com", path_prefix: /, headers: [{name: X-Tenant, exact: blue}, {name: ":method", exact: GET}], backend: b}`,
		`{path_prefix: /, backend: b, headers: [{name: x-tenant, exact: red}]}`,
		`{path_prefix: /, backend: b, retries: {attempts: 0}}`,
	)+"backends:\n  - name: b\n    endpoints: [\"10.0.0.1:80\"]\n    lb_policy: least_request\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.Problems) > 0 {
		t.Fatalf("problems: %v", cf.Problems)
	}
	rs := cf.Listeners[0].Routes
	if len(rs) != 4 {
		t.Fatalf("routes = %d", len(rs))
	}
	r := rs[0]
	if r.Host != "api.example.com" || r.Path != "/v1/pay" || r.PathPrefix != "" || *r.Timeout != 5*time.Second || *r.IdleTimeout != 0 {
		t.Errorf("route 0 = %+v", r)
	}
	if p := r.EffectiveRetries(); p.Attempts != 2 || len(p.On) != 2 || p.On[0] != config.RetryReset || p.On[1] != config.Retry5xx {
		t.Errorf("route 0 retries = %+v", p)
	}
	r = rs[1]
	if r.Host != "*.example.com" || len(r.Headers) != 2 || r.Headers[0] != (config.HeaderMatch{Name: "x-tenant", Exact: "blue"}) || r.Headers[1].Name != ":method" {
		t.Errorf("route 1 = %+v", r)
	}
	if r.EffectiveTimeout() != config.RouteTimeoutDefault || r.IdleTimeout != nil {
		t.Errorf("route 1 timeouts = %v %v", r.EffectiveTimeout(), r.IdleTimeout)
	}
	if p := r.EffectiveRetries(); p.Attempts != 1 || len(p.On) != 1 || p.On[0] != config.RetryConnectFailure {
		t.Errorf("default retries = %+v", p)
	}
	if p := rs[3].EffectiveRetries(); p.Attempts != 0 {
		t.Errorf("attempts 0 = %+v", p)
	}
	if cf.Backends[0].LBPolicy != config.LBLeastRequest {
		t.Errorf("lb_policy = %v", cf.Backends[0].LBPolicy)
	}
}

// TestRouteRefusals holds every refusal of the new route fields to the
// sentence check prints, with its line.
func TestRouteRefusals(t *testing.T) {
	for _, tc := range []struct{ name, route, want string }{
		{"path and prefix", `{path: /a, path_prefix: /a, backend: b}`, `c.yaml:6: listener "a": routes[0]: set one of path (exact) and path_prefix, not both`},
		{"no path", `{backend: b}`, `c.yaml:6: listener "a": routes[0]: path (exact) or path_prefix is required`},
		{"path without slash", `{path: a, backend: b}`, `c.yaml:6: listener "a": routes[0]: path "a" must start with /`},
		{"host star", `{host: "*", path_prefix: /, backend: b}`, `c.yaml:6: listener "a": routes[0]: host "*": omit host for a route that serves every host`},
		{"host port", `{host: "a.example:8443", path_prefix: /, backend: b}`, `c.yaml:6: listener "a": routes[0]: host "a.example:8443": no port: the port of the request's authority is ignored when matching hosts`},
		{"host inner wildcard", `{host: "a.*.example", path_prefix: /, backend: b}`, `c.yaml:6: listener "a": routes[0]: host "a.*.example": a wildcard is allowed only as a whole first label, as in *.example.com`},
		{"host not a name", `{host: "a b", path_prefix: /, backend: b}`, `c.yaml:6: listener "a": routes[0]: host "a b": want a DNS name or *. and a DNS name`},
		{"pseudo authority", `{path_prefix: /, backend: b, headers: [{name: ":authority", exact: x}]}`, `c.yaml:6: listener "a": routes[0]: headers[0]: pseudo-header ":authority" cannot be matched: only :method (use host for :authority, path or path_prefix for :path; :scheme is always https)`},
		{"xfcc", `{path_prefix: /, backend: b, headers: [{name: X-Forwarded-Client-Cert, exact: x}]}`, `c.yaml:6: listener "a": routes[0]: headers[0]: header "X-Forwarded-Client-Cert" cannot be matched: certplane removes it from every request and sets its own from the verified certificate`},
		{"alb", `{path_prefix: /, backend: b, headers: [{name: x-amzn-mtls-clientcert-subject, exact: x}]}`, `c.yaml:6: listener "a": routes[0]: headers[0]: header "x-amzn-mtls-clientcert-subject" cannot be matched: certplane removes every such header from requests and sets its own from the verified certificate`},
		{"host header", `{path_prefix: /, backend: b, headers: [{name: host, exact: x}]}`, `c.yaml:6: listener "a": routes[0]: headers[0]: header "host" cannot be matched: use the route's host field (Envoy routes on :authority, which HTTP/1.1's Host becomes)`},
		{"envoy internal", `{path_prefix: /, backend: b, headers: [{name: x-envoy-retry-on, exact: x}]}`, `c.yaml:6: listener "a": routes[0]: headers[0]: header "x-envoy-retry-on" cannot be matched: Envoy strips or sets its internal headers`},
		{"underscore", `{path_prefix: /, backend: b, headers: [{name: x_tenant, exact: x}]}`, `c.yaml:6: listener "a": routes[0]: headers[0]: header "x_tenant" has an underscore: such headers are dropped or refused before routing (http.headers_with_underscores), so it would never match`},
		{"empty exact", `{path_prefix: /, backend: b, headers: [{name: x-t}]}`, `c.yaml:6: listener "a": routes[0]: headers[0]: header "x-t": exact is required and must not be empty`},
		{"header twice", `{path_prefix: /, backend: b, headers: [{name: x-t, exact: a}, {name: X-T, exact: b}]}`, `c.yaml:6: listener "a": routes[0]: headers[1]: header "X-T" is listed twice`},
		{"bad timeout", `{path_prefix: /, backend: b, timeout: 5}`, `c.yaml:6: listener "a": routes[0]: timeout "5": want a duration such as 30s or 500ms (0s disables it)`},
		{"sub-ms idle", `{path_prefix: /, backend: b, idle_timeout: 1500us}`, `c.yaml:6: listener "a": routes[0]: idle_timeout "1500us": Envoy takes timeouts in whole milliseconds`},
		{"too many attempts", `{path_prefix: /, backend: b, retries: {attempts: 9}}`, `c.yaml:6: listener "a": routes[0]: retries: attempts 9: at most 5 (each retry is one more backend request)`},
		{"unknown retry on", `{path_prefix: /, backend: b, retries: {on: [gateway-error]}}`, `c.yaml:6: listener "a": routes[0]: retries: on: "gateway-error": want connect-failure, reset or 5xx`},
		{"empty retry on", `{path_prefix: /, backend: b, retries: {on: []}}`, `c.yaml:6: listener "a": routes[0]: retries: on is empty; omit it for [connect-failure], or set attempts: 0 for no retries`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf, err := config.ParseConfig("c.yaml", []byte(routeYAML(tc.route)))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range cf.Problems {
				got = append(got, p.Error())
			}
			assertProblems(t, "problems", got, []string{tc.want})
		})
	}
}

// TestRouteShadowing refuses a route that an earlier one always takes
// first: routes match in the order written, and a host-less route serves
// every host.
func TestRouteShadowing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		routes []string
		want   string
	}{
		{"host-less before host", []string{`{path_prefix: /, backend: b}`, `{host: a.example, path_prefix: /, backend: b}`},
			`c.yaml:7: listener "a": routes[1]: routes[0] above matches every request this route matches (host a.example, path_prefix /), so this route would never match`},
		{"wildcard before exact", []string{`{host: "*.example", path: /x, backend: b}`, `{host: a.example, path: /x, backend: b}`},
			`c.yaml:7: listener "a": routes[1]: routes[0] above matches every request this route matches (host a.example, path /x), so this route would never match`},
		{"fewer headers first", []string{`{path_prefix: /, backend: b, headers: [{name: x-a, exact: "1"}]}`, `{path_prefix: /, backend: b, headers: [{name: x-b, exact: "2"}, {name: x-a, exact: "1"}]}`},
			`c.yaml:7: listener "a": routes[1]: routes[0] above matches every request this route matches (path_prefix /, x-b: 2, x-a: 1), so this route would never match`},
		{"exact then prefix ok", []string{`{path: /, backend: b}`, `{path_prefix: /, backend: b}`}, ""},
		{"host then host-less ok", []string{`{host: a.example, path_prefix: /, backend: b}`, `{path_prefix: /, backend: b}`}, ""},
		{"exact before wildcard ok", []string{`{host: a.example, path_prefix: /, backend: b}`, `{host: "*.example", path_prefix: /, backend: b}`}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf, err := config.ParseConfig("c.yaml", []byte(routeYAML(tc.routes...)))
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, p := range cf.Problems {
				got = append(got, p.Error())
			}
			if tc.want != "" {
				want = []string{tc.want}
			}
			assertProblems(t, "problems", got, want)
		})
	}
}

func TestBackendLBPolicyRefusal(t *testing.T) {
	cf, err := config.ParseConfig("c.yaml", []byte("backends:\n  - name: b\n    endpoints: [\"10.0.0.1:80\"]\n    lb_policy: ring_hash\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range cf.Problems {
		got = append(got, p.Error())
	}
	assertProblems(t, "problems", got, []string{`c.yaml:4: backend "b": lb_policy "ring_hash": want round_robin, least_request or random`})
}
