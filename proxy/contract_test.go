package proxy

import (
	"strings"
	"testing"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// edgeOptions are the choices of the issue #11 contract (contract-11.md,
// with the envoy side's choices in contract-11-changes.md) that a
// listener's resources carry: the connection manager's edge limits, the
// identity-header removal filter, the identity headers only on routes
// matched with a presented certificate, and the loop-detection route.
type edgeOptions struct {
	// underscores is headers_with_underscores_action; zero means DROP_HEADER.
	underscores corev3.HttpProtocolOptions_HeadersWithUnderscoresAction
	// escaped is path_with_escaped_slashes_action; zero means the
	// contract's choice (edgeEscapedAction).
	escaped hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction
	// token is the loop-detection token; "" means edgeToken.
	token string
	// verify is set by listenerSpec.build for mode verify: its routes
	// exist only in their presented-certificate copy.
	verify bool
}

// edgeToken is a loop token as envoy.LoopToken makes them.
const edgeToken = "certplane-0123456789abcdef"

// edgeLoopBody is the loop route's direct_response body.
const edgeLoopBody = "loop detected\n"

// edgeEscapedAction is the envoy side's path_with_escaped_slashes_action.
const edgeEscapedAction = hcmv3.HttpConnectionManager_REJECT_REQUEST

// identityHeaderFilter is envoy.IdentityHeaderFilter: a header_mutation
// filter, first in the chain, that removes ALB's passthrough header and
// every x-amzn-mtls-clientcert-* header a client sent.
func identityHeaderFilter() *hcmv3.HttpFilter {
	remove := func(m *matcherv3.StringMatcher) *mutationv3.HeaderMutation {
		m.IgnoreCase = true
		return &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_RemoveOnMatch_{
			RemoveOnMatch: &mutationv3.HeaderMutation_RemoveOnMatch{KeyMatcher: m},
		}}
	}
	hm := &headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{
		RequestMutations: []*mutationv3.HeaderMutation{
			remove(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "x-amzn-mtls-clientcert"}}),
			remove(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "x-amzn-mtls-clientcert-"}}),
		},
	}}
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.header_mutation", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(hm)}}
}

// applyEdgeHCM sets the contract's connection-manager fields.
func applyEdgeHCM(h *hcmv3.HttpConnectionManager, o edgeOptions) {
	if o.underscores == corev3.HttpProtocolOptions_ALLOW {
		o.underscores = corev3.HttpProtocolOptions_DROP_HEADER
	}
	if o.escaped == hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT {
		o.escaped = edgeEscapedAction
	}
	h.CommonHttpProtocolOptions.HeadersWithUnderscoresAction = o.underscores
	h.NormalizePath = wrapperspb.Bool(true)
	h.MergeSlashes = true
	h.PathWithEscapedSlashesAction = o.escaped
	h.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{
		MaxConcurrentStreams:        wrapperspb.UInt32(100),
		InitialStreamWindowSize:     wrapperspb.UInt32(65536),
		InitialConnectionWindowSize: wrapperspb.UInt32(1048576),
	}
	h.HttpFilters = append([]*hcmv3.HttpFilter{identityHeaderFilter()}, h.HttpFilters...)
}

// applyEdgeRoutes adds the loop-detection route first in every virtual host
// and the Via header, and moves route-configuration identity headers onto
// copies of each route that match only when a certificate was presented
// (envoy.RouteConfiguration).
func applyEdgeRoutes(rc *routev3.RouteConfiguration, o edgeOptions) {
	token := o.token
	if token == "" {
		token = edgeToken
	}
	identity := rc.RequestHeadersToAdd
	rc.RequestHeadersToAdd = []*corev3.HeaderValueOption{{
		Header:       &corev3.HeaderValue{Key: "via", Value: "1.1 " + token},
		AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
	}}
	rc.RequestHeadersToRemove = nil
	for _, vh := range rc.VirtualHosts {
		routes := []*routev3.Route{{
			Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers: []*routev3.HeaderMatcher{{
					Name: "via",
					HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
						MatchPattern: &matcherv3.StringMatcher_Contains{Contains: token},
					}},
				}},
			},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 508,
				Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: edgeLoopBody}},
			}},
		}}
		for _, r := range vh.Routes {
			if len(identity) > 0 {
				routes = append(routes, &routev3.Route{
					Match: &routev3.RouteMatch{
						PathSpecifier: r.Match.PathSpecifier,
						TlsContext:    &routev3.RouteMatch_TlsContextMatchOptions{Presented: wrapperspb.Bool(true)},
					},
					Action:              r.Action,
					RequestHeadersToAdd: identity,
				})
				if o.verify {
					continue
				}
			}
			routes = append(routes, r)
		}
		vh.Routes = routes
	}
}

// edgeListener applies the contract to a built Listener and its routes.
func edgeListener(l *listenerv3.Listener, rc *routev3.RouteConfiguration, o edgeOptions) {
	l.PerConnectionBufferLimitBytes = wrapperspb.UInt32(32768)
	for _, fc := range append(append([]*listenerv3.FilterChain{}, l.FilterChains...), l.DefaultFilterChain) {
		if fc == nil {
			continue
		}
		mutateHCM(fc, func(h *hcmv3.HttpConnectionManager) { applyEdgeHCM(h, o) })
	}
	applyEdgeRoutes(rc, o)
}

// mutateHCM rewrites the connection manager of a filter chain.
func mutateHCM(fc *listenerv3.FilterChain, f func(*hcmv3.HttpConnectionManager)) {
	var h hcmv3.HttpConnectionManager
	if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(&h); err != nil {
		panic(err)
	}
	f(&h)
	fc.Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&h)}
}

// addrOrNACK waits for listener to serve; a NACK fails the test at once
// with its error_detail, so a resource the proxy refuses says why.
func (rp *runningProxy) addrOrNACK(t testing.TB, a *adsServer, listener string) string {
	t.Helper()
	var addr string
	waitFor(t, "listener "+listener+" to serve", func() bool {
		if n := a.nackList(); len(n) > 0 {
			t.Fatalf("the proxy NACKed the contract resources: %s", strings.Join(n, "\n"))
		}
		if a := rp.ListenerAddr(listener); a != nil {
			addr = a.String()
		}
		return addr != ""
	})
	return addr
}
