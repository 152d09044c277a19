package proxy

import (
	"errors"
	"fmt"
	"net"
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
	name    string
	vhosts  []*vhost
	remove  []string
	add     []headerAdd
	version string
}

type vhost struct {
	name    string
	domains []string
	routes  []*route
}

type route struct {
	prefix  string
	cluster string
	timeout time.Duration // 0: no timeout (Envoy's "0s" disables it)
}

// headerAdd is one request_headers_to_add entry.
type headerAdd struct {
	key       string
	format    string
	action    corev3.HeaderValueOption_HeaderAppendAction
	keepEmpty bool
}

// buildRoutes parses and checks a RouteConfiguration.
func buildRoutes(rc *routev3.RouteConfiguration) (*routeTable, error) {
	t := &routeTable{name: rc.GetName()}
	if len(rc.GetVirtualHosts()) == 0 {
		return nil, errors.New("virtual_hosts is empty")
	}
	for i, vh := range rc.GetVirtualHosts() {
		v := &vhost{name: vh.GetName()}
		if len(vh.GetDomains()) == 0 {
			return nil, fmt.Errorf("virtual_hosts[%d].domains is empty", i)
		}
		for _, d := range vh.GetDomains() {
			v.domains = append(v.domains, strings.ToLower(d))
		}
		for j, r := range vh.GetRoutes() {
			p, ok := r.GetMatch().GetPathSpecifier().(*routev3.RouteMatch_Prefix)
			if !ok {
				return nil, fmt.Errorf("virtual_hosts[%d].routes[%d].match: only prefix is implemented by certplane proxy", i, j)
			}
			a := r.GetRoute()
			if a == nil || a.GetCluster() == "" {
				return nil, fmt.Errorf("virtual_hosts[%d].routes[%d].route.cluster is empty", i, j)
			}
			rt := &route{prefix: p.Prefix, cluster: a.GetCluster(), timeout: envoyDefaultRouteTimeout}
			if a.GetTimeout() != nil {
				if err := a.GetTimeout().CheckValid(); err != nil {
					return nil, fmt.Errorf("virtual_hosts[%d].routes[%d].route.timeout: %w", i, j, err)
				}
				rt.timeout = a.GetTimeout().AsDuration()
			}
			v.routes = append(v.routes, rt)
		}
		t.vhosts = append(t.vhosts, v)
	}
	for _, h := range rc.GetRequestHeadersToRemove() {
		t.remove = append(t.remove, strings.ToLower(h))
	}
	for i, h := range rc.GetRequestHeadersToAdd() {
		key := strings.ToLower(h.GetHeader().GetKey())
		if key == "" {
			return nil, fmt.Errorf("request_headers_to_add[%d].header.key is empty", i)
		}
		if err := mtls.CheckHeaderFormat(h.GetHeader().GetValue()); err != nil {
			return nil, fmt.Errorf("request_headers_to_add[%d] %q: %w", i, key, err)
		}
		t.add = append(t.add, headerAdd{key: key, format: h.GetHeader().GetValue(), action: h.GetAppendAction(), keepEmpty: h.GetKeepEmptyValue()})
	}
	return t, nil
}

// match picks the route for a request as Envoy does: the virtual host by
// Host (exact, then suffix and prefix wildcards, then "*"), then the first
// route whose prefix matches the path.
func (t *routeTable) match(host, path string) *route {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	v := t.vhost(host)
	if v == nil {
		return nil
	}
	for _, r := range v.routes {
		if strings.HasPrefix(path, r.prefix) {
			return r
		}
	}
	return nil
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
