package envoy

import (
	"fmt"
	"slices"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/certplane/certplane/config"
)

// Filter names.
const (
	HTTPConnectionManagerName = "envoy.filters.network.http_connection_manager"
	RouterName                = "envoy.filters.http.router"
	HeaderMutationName        = "envoy.filters.http.header_mutation"
	TLSInspectorName          = "envoy.filters.listener.tls_inspector"
)

// Connection limits of every listener, as a load balancer would set them.
const (
	IdleTimeout           = 300 * time.Second
	RequestHeadersTimeout = 10 * time.Second
	StreamIdleTimeout     = 300 * time.Second
	MaxRequestHeadersKB   = 60
)

// Limits from Envoy's "Configuring Envoy as an edge proxy": Envoy's
// defaults (1 MiB buffers, 16 MiB and 24 MiB HTTP/2 windows, 1024 streams)
// suit a service mesh, not clients on the internet.
const (
	PerConnectionBufferLimit    = 32 << 10 // listener and cluster, bytes
	MaxConcurrentStreams        = 100      // per HTTP/2 connection
	InitialStreamWindowSize     = 64 << 10 // HTTP/2, bytes
	InitialConnectionWindowSize = 1 << 20  // HTTP/2, bytes
)

// HTTPConnectionManager terminates HTTP for listener l. Client certificate
// details reach the backends in XFCC when l selects "xfcc"; an inbound XFCC
// header is removed in every case (SANITIZE), so clients cannot forge one.
// Header names with '_' are dropped (or the request refused) before any
// filter sees them, and the IdentityHeaderFilter runs first.
func HTTPConnectionManager(l *config.Listener, o Options) (*hcmv3.HttpConnectionManager, error) {
	router, err := typed(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	strip, err := typed(IdentityHeaderFilter())
	if err != nil {
		return nil, err
	}
	log, err := HTTPAccessLog(l.Name)
	if err != nil {
		return nil, err
	}
	underscores, err := headersWithUnderscoresAction(l)
	if err != nil {
		return nil, err
	}
	h := &hcmv3.HttpConnectionManager{
		StatPrefix: l.Name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       HeaderMutationName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: strip},
		}, {
			Name:       RouterName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
		UseRemoteAddress:         wrapperspb.Bool(true),
		XffNumTrustedHops:        0,
		ForwardClientCertDetails: hcmv3.HttpConnectionManager_SANITIZE,
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{
			IdleTimeout:                  durationpb.New(IdleTimeout),
			HeadersWithUnderscoresAction: underscores,
		},
		Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
			MaxConcurrentStreams:        wrapperspb.UInt32(MaxConcurrentStreams),
			InitialStreamWindowSize:     wrapperspb.UInt32(InitialStreamWindowSize),
			InitialConnectionWindowSize: wrapperspb.UInt32(InitialConnectionWindowSize),
		},
		// Routes match by path prefix, so the path routed is the path the
		// backend gets: '.'/'..' resolved, '//' merged, and an escaped slash
		// (%2F, %5C) refused rather than forwarded for a backend to decode
		// into a path no route meant to send it (docs/resources.md).
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_REJECT_REQUEST,
		RequestHeadersTimeout:        durationpb.New(RequestHeadersTimeout),
		StreamIdleTimeout:            durationpb.New(StreamIdleTimeout),
		MaxRequestHeadersKb:          wrapperspb.UInt32(MaxRequestHeadersKB),
		AccessLog:                    []*accesslogv3.AccessLog{log},
	}
	if slices.Contains(l.ClientCertHeaders, config.HeaderXFCC) {
		if h.ForwardClientCertDetails, h.SetCurrentClientCertDetails, err = XFCCDetails(l.XFCC); err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.Name, err)
		}
	}
	rbac, err := rbacHTTPFilter(l)
	if err != nil {
		return nil, err
	}
	if rbac != nil {
		// After the identity headers are stripped, before the router.
		h.HttpFilters = slices.Insert(h.HttpFilters, len(h.HttpFilters)-1, rbac)
	}
	for _, x := range l.ClientCertHeaders {
		if x != config.HeaderXFCC && x != config.HeaderALB {
			return nil, fmt.Errorf("listener %q: unknown client_cert_headers entry %s (want xfcc or alb)", l.Name, x)
		}
	}
	if o.Static {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: RouteConfiguration(l, o)}
	} else {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: l.Name,
			ConfigSource:    ads(),
		}}
	}
	return h, nil
}

// IdentityHeaderFilter is the header_mutation filter first in every chain:
// it removes, whatever client_cert_headers says, every request header a
// client could use to pose as an ALB-verified identity: ALB's passthrough
// header (the whole certificate) and every x-amzn-mtls-clientcert-* name,
// not only the five certplane sets. Routes add certplane's own afterwards.
// XFCC is left to the connection manager (SANITIZE / SANITIZE_SET), which
// has already replaced it when this filter runs.
func IdentityHeaderFilter() *headermutationv3.HeaderMutation {
	remove := func(m *matcherv3.StringMatcher) *mutationrulesv3.HeaderMutation {
		m.IgnoreCase = true
		return &mutationrulesv3.HeaderMutation{Action: &mutationrulesv3.HeaderMutation_RemoveOnMatch_{
			RemoveOnMatch: &mutationrulesv3.HeaderMutation_RemoveOnMatch{KeyMatcher: m},
		}}
	}
	return &headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{
		RequestMutations: []*mutationrulesv3.HeaderMutation{
			remove(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: HeaderALBPassthrough}}),
			remove(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: HeaderALBPrefix}}),
		},
	}}
}

// headersWithUnderscoresAction maps l's http.headers_with_underscores.
// WSGI and CGI backends read X_Forwarded_Client_Cert as the real header,
// so allowing such names is never an option.
func headersWithUnderscoresAction(l *config.Listener) (corev3.HttpProtocolOptions_HeadersWithUnderscoresAction, error) {
	switch l.HTTP.HeadersWithUnderscores {
	case config.UnderscoresDrop:
		return corev3.HttpProtocolOptions_DROP_HEADER, nil
	case config.UnderscoresReject:
		return corev3.HttpProtocolOptions_REJECT_REQUEST, nil
	}
	return 0, fmt.Errorf("listener %q: unknown http.headers_with_underscores %s (want drop or reject)", l.Name, l.HTTP.HeadersWithUnderscores)
}
