package envoy

import (
	"slices"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"

	"github.com/certplane/certplane/config"
)

// VirtualHost is one virtual host of a listener's RouteConfiguration: the
// domains it serves and the config routes it holds, in the order written.
type VirtualHost struct {
	Name    string
	Domains []string
	Routes  []config.Route
}

// VirtualHosts lays listener l's routes out as Envoy virtual hosts. Routes
// match in the order written, and a route without host serves every host.
// Envoy picks one virtual host per request (exact domain, then the longest
// "*." suffix, then "*") and the first route in it that matches, so each
// route host H gets a virtual host holding, in written order, every route
// whose host covers H: its own, those of a wildcard covering it, and those
// without host. The "*" virtual host, named after the listener, holds the
// routes without host. Whatever virtual host Envoy picks for a request,
// its routes are then exactly the routes whose host matches the request,
// in written order: the first that matches is the one written first.
// Virtual hosts come in the order their host first appears, "*" last.
func VirtualHosts(l *config.Listener) []VirtualHost {
	var hosts []string
	for _, r := range l.Routes {
		if r.Host != "" && !slices.Contains(hosts, r.Host) {
			hosts = append(hosts, r.Host)
		}
	}
	out := make([]VirtualHost, 0, len(hosts)+1)
	for _, h := range hosts {
		vh := VirtualHost{Name: l.Name + "/" + h, Domains: []string{h}}
		for _, r := range l.Routes {
			if config.HostCovers(r.Host, h) {
				vh.Routes = append(vh.Routes, r)
			}
		}
		out = append(out, vh)
	}
	star := VirtualHost{Name: l.Name, Domains: []string{"*"}}
	for _, r := range l.Routes {
		if r.Host == "" {
			star.Routes = append(star.Routes, r)
		}
	}
	return append(out, star)
}

// Retry settings certplane sends with every retry policy.
const (
	// PreviousHostsPredicate makes a retry avoid the hosts already tried.
	PreviousHostsPredicate = "envoy.retry_host_predicates.previous_hosts"
	// HostSelectionRetryMaxAttempts is how often the load balancer picks
	// again when it picks a host already tried; after that the last pick
	// is used. With random or least_request over two hosts, one of them
	// down, a retry returns to it with probability 1/64.
	HostSelectionRetryMaxAttempts = 5
)

// RetryPolicy is Envoy's retry_policy for p, or nil for no retries.
// Envoy retries whatever the method: connect-failure only when the
// request never left, reset and 5xx replay it.
func RetryPolicy(p config.RetryPolicy) *routev3.RetryPolicy {
	if p.Attempts == 0 {
		return nil
	}
	on := make([]string, 0, len(p.On))
	for _, c := range p.On {
		on = append(on, c.String())
	}
	pred, err := typed(&previoushostsv3.PreviousHostsPredicate{})
	if err != nil {
		panic("envoy: marshal PreviousHostsPredicate: " + err.Error()) // an empty message always marshals
	}
	return &routev3.RetryPolicy{
		RetryOn:    strings.Join(on, ","),
		NumRetries: wrapperspb.UInt32(p.Attempts),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       PreviousHostsPredicate,
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: pred},
		}},
		HostSelectionRetryMaxAttempts: HostSelectionRetryMaxAttempts,
	}
}
