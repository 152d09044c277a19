package envoy

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/certplane/certplane/config"
)

// The ALB-style client certificate headers, as AWS ALB names them. ALB's
// passthrough mode sends the whole certificate in HeaderALBPassthrough.
const (
	HeaderALBPassthrough = "x-amzn-mtls-clientcert"
	HeaderALBPrefix      = "x-amzn-mtls-clientcert-"

	HeaderALBSerial   = "x-amzn-mtls-clientcert-serial-number"
	HeaderALBIssuer   = "x-amzn-mtls-clientcert-issuer"
	HeaderALBSubject  = "x-amzn-mtls-clientcert-subject"
	HeaderALBValidity = "x-amzn-mtls-clientcert-validity"
	HeaderALBLeaf     = "x-amzn-mtls-clientcert-leaf"
)

// ALBHeaders lists the ALB headers in the order they are added.
var ALBHeaders = []string{HeaderALBSerial, HeaderALBIssuer, HeaderALBSubject, HeaderALBValidity, HeaderALBLeaf}

// albValues are Envoy substitution formats. Like ALB: serial in hex, issuer
// and subject in RFC 2253, validity in UTC, the leaf as URL-encoded PEM.
var albValues = map[string]string{
	HeaderALBSerial:   "%DOWNSTREAM_PEER_SERIAL%",
	HeaderALBIssuer:   "%DOWNSTREAM_PEER_ISSUER%",
	HeaderALBSubject:  "%DOWNSTREAM_PEER_SUBJECT%",
	HeaderALBValidity: "NotBefore=%DOWNSTREAM_PEER_CERT_V_START(%Y-%m-%dT%H:%M:%SZ)%;NotAfter=%DOWNSTREAM_PEER_CERT_V_END(%Y-%m-%dT%H:%M:%SZ)%",
	HeaderALBLeaf:     "%DOWNSTREAM_PEER_CERT%",
}

// RouteTimeout bounds one request end to end when a route sets no timeout
// (Envoy's default is 15s).
const RouteTimeout = config.RouteTimeoutDefault

// Loop detection: every forwarded request carries this listener's token in
// a via header; a request that arrives with it has been here before.
const (
	HeaderVia        = "via"
	LoopStatus       = 508 // Loop Detected (RFC 5842)
	LoopBody         = "loop detected\n"
	loopTokenVersion = "certplane loop token v1"
)

// LoopToken names listener within one control plane instance:
// "certplane-" and 16 hex digits of a hash, so that no token is a
// substring of another (listener "api" against "api2") and listeners of
// two chained deployments with the same name differ when their instances
// do. Empty instance: the token depends on the listener name only.
func LoopToken(listener, instance string) string {
	sum := sha256.Sum256([]byte(loopTokenVersion + "\x00" + instance + "\x00" + listener))
	return "certplane-" + hex.EncodeToString(sum[:8])
}

// RouteConfiguration routes listener l's requests to its backends: one
// virtual host per route host, plus the "*" virtual host (VirtualHosts).
// Each virtual host starts with a route that answers 508 to a request
// already carrying l's loop token. Identity headers are added only on
// routes that match a presented client certificate: a client without one
// gets no identity header at all (Envoy would render the validity header
// as "NotBefore=;NotAfter="). Inbound identity headers are removed
// earlier, by IdentityHeaderFilter.
func RouteConfiguration(l *config.Listener, o Options) *routev3.RouteConfiguration {
	token := LoopToken(l.Name, o.Instance)
	alb := slices.Contains(l.ClientCertHeaders, config.HeaderALB)
	var vhosts []*routev3.VirtualHost
	for _, g := range VirtualHosts(l) {
		vh := &routev3.VirtualHost{Name: g.Name, Domains: g.Domains, Routes: []*routev3.Route{loopRoute(token)}}
		for _, r := range g.Routes {
			if alb {
				withCert := forward(r)
				withCert.Match.TlsContext = &routev3.RouteMatch_TlsContextMatchOptions{Presented: wrapperspb.Bool(true)}
				withCert.RequestHeadersToAdd = albHeaders()
				routeRBAC(l, r, withCert)
				vh.Routes = append(vh.Routes, withCert)
				if l.ClientAuth.Mode == config.ModeVerify {
					continue // a certificate is always presented
				}
			}
			fwd := forward(r)
			routeRBAC(l, r, fwd)
			vh.Routes = append(vh.Routes, fwd)
		}
		vhosts = append(vhosts, vh)
	}
	rc := &routev3.RouteConfiguration{
		Name:         l.Name,
		VirtualHosts: vhosts,
		// Route hosts carry no port, and a client reaching the listener
		// through a port mapping may send any: both planes match the
		// authority without its port (the port is still forwarded).
		IgnorePortInHostMatching: true,
		// The router adds these when it forwards, after route matching, so
		// the loop route sees only the tokens of earlier hops.
		RequestHeadersToAdd: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: HeaderVia, Value: "1.1 " + token},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		}},
	}
	GuardFronting(rc, l.PeerServerNames)
	return rc
}

// loopRoute answers 508 to a request whose via header (all values, joined
// with ',' as Envoy's header matcher sees them) holds token.
func loopRoute(token string) *routev3.Route {
	return &routev3.Route{
		Match: &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers: []*routev3.HeaderMatcher{{
				Name: HeaderVia,
				HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_Contains{Contains: token},
				}},
			}},
		},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: LoopStatus,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: LoopBody}},
		}},
	}
}

// forward sends the requests route r matches to its backend.
func forward(r config.Route) *routev3.Route {
	m := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: r.PathPrefix}}
	if r.Path != "" {
		m.PathSpecifier = &routev3.RouteMatch_Path{Path: r.Path}
	}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, &routev3.HeaderMatcher{
			Name: h.Name,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Exact},
			}},
		})
	}
	a := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: r.Backend},
		Timeout:          durationpb.New(r.EffectiveTimeout()),
		RetryPolicy:      RetryPolicy(r.EffectiveRetries()),
	}
	if r.IdleTimeout != nil {
		a.IdleTimeout = durationpb.New(*r.IdleTimeout)
	}
	return &routev3.Route{Match: m, Action: &routev3.Route_Route{Route: a}}
}

// albHeaders sets the ALB headers from the peer certificate, replacing any
// a client sent.
func albHeaders() []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, 0, len(ALBHeaders))
	for _, h := range ALBHeaders {
		out = append(out, &corev3.HeaderValueOption{
			Header:         &corev3.HeaderValue{Key: h, Value: albValues[h]},
			AppendAction:   corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			KeepEmptyValue: false,
		})
	}
	return out
}
