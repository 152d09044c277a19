package proxy

import (
	"net/http"
	"testing"

	"github.com/certplane/certplane/config"
)

// TestRouteMatchingVirtualHosts runs the envoy builder's virtual host
// layout through the proxy: a request takes the first route, in the order
// written, whose host (exact, or "*." wildcard; port ignored), path (exact
// or prefix) and headers match; a route without host serves every host.
func TestRouteMatchingVirtualHosts(t *testing.T) {
	names := []string{"charge", "blue", "status", "api", "site"}
	var backends []*config.Backend
	for _, n := range names {
		b := startBackend(t, n)
		backends = append(backends, &config.Backend{Name: n, Endpoints: endpointsOf(t, b.addr())})
	}
	l := &config.Listener{Name: "public", Routes: []config.Route{
		{Host: "api.example.com", Path: "/v1/charge", Backend: "charge"},
		{Host: "*.example.com", PathPrefix: "/v1", Backend: "blue", Headers: []config.HeaderMatch{{Name: "x-tenant", Exact: "blue"}, {Name: ":method", Exact: "GET"}}},
		{Path: "/status", Backend: "status"},
		{Host: "api.example.com", PathPrefix: "/", Backend: "api"},
		{PathPrefix: "/", Backend: "site"},
	}}
	e := newRoutingEnv(t, l, backends...)
	blue := http.Header{"X-Tenant": {"blue"}}
	for _, tc := range []struct {
		name, method, host, path string
		header                   http.Header
		want                     string
	}{
		{"exact host and path, port ignored", "GET", "api.example.com:8443", "/v1/charge", nil, "charge"},
		{"host case-insensitive", "GET", "API.Example.COM", "/v1/charge", nil, "charge"},
		{"exact path only", "GET", "api.example.com", "/v1/charge/refund", nil, "api"},
		{"exact path ignores the query", "GET", "api.example.com", "/v1/charge?id=7", nil, "charge"},
		{"wildcard host with headers", "GET", "shop.example.com", "/v1/cart", blue, "blue"},
		{"wildcard covers deeper names", "GET", "a.b.example.com", "/v1", blue, "blue"},
		{"wildcard route written before the host's own", "GET", "api.example.com", "/v1/x", blue, "blue"},
		{":method must match", "POST", "shop.example.com", "/v1/cart", blue, "site"},
		{"header value must match", "GET", "shop.example.com", "/v1/cart", http.Header{"X-Tenant": {"red"}}, "site"},
		{"repeated header joined with a comma", "GET", "shop.example.com", "/v1/cart", http.Header{"X-Tenant": {"blue", "red"}}, "site"},
		{"wildcard needs a label", "GET", "example.com", "/v1", blue, "site"},
		{"host-less route written before the host's", "GET", "api.example.com", "/status", nil, "status"},
		{"host-less route on another host", "GET", "other.org", "/status", nil, "status"},
		{"host's catch-all", "GET", "api.example.com:443", "/anything", nil, "api"},
		{"catch-all of every host", "GET", "other.org", "/anything", nil, "site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(t, tc.method, tc.host, tc.path, tc.header, nil)
			if code != 200 || body != tc.want {
				t.Errorf("%s %s%s: %d %q, want 200 %q", tc.method, tc.host, tc.path, code, body, tc.want)
			}
		})
	}
}

// TestVirtualHostPortMatching: without ignore_port_in_host_matching the
// proxy, like Envoy, matches the authority with its port.
func TestVirtualHostPortMatching(t *testing.T) {
	rt := &routeTable{vhosts: []*vhost{
		{name: "api", domains: []string{"api.example.com"}, routes: []*route{{prefix: "/", cluster: "api"}}},
		{name: "star", domains: []string{"*"}, routes: []*route{{prefix: "/", cluster: "site"}}},
	}}
	if v, _ := rt.match("api.example.com:8443", "/", requestFacts{}); v.name != "star" {
		t.Errorf("port kept: virtual host %s, want star", v.name)
	}
	rt.ignorePort = true
	if v, _ := rt.match("api.example.com:8443", "/", requestFacts{}); v.name != "api" {
		t.Errorf("port ignored: virtual host %s, want api", v.name)
	}
}
