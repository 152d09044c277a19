package envoy

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Domain fronting: on a shared address the client's SNI chooses the
// listener (its certificate, client authentication and routes), but the
// request names its host again in Host / :authority. A client could take
// the public listener's SNI, skipping its mTLS, and name a partner host;
// such a request is answered 421 Misdirected Request (RFC 9110 15.5.20:
// "the server is not able to produce a response for the combination of
// scheme and authority") and reaches no backend.
const (
	MisdirectedStatus = 421
	MisdirectedBody   = "misdirected request\n"
	authorityHeader   = ":authority"
)

// GuardFronting prepends to every virtual host of rc the routes that
// answer 421 to a request whose authority is one of names (other
// listeners' server_names): case aside, with or without a port and a
// trailing dot. It works whatever the virtual hosts are, so routing
// features never have to know about it.
//
// The matchers are plain string matchers with ignore_case, not one RE2
// regex: Envoy refuses a regex whose RE2 program size exceeds runtime
// re2.max_program_size.error_level (100 by default), which one long DNS
// name would do.
func GuardFronting(rc *routev3.RouteConfiguration, names []string) {
	if len(names) == 0 {
		return
	}
	var guard []*routev3.Route
	for _, n := range names {
		guard = append(guard, frontingRoutes(n)...)
	}
	for _, vh := range rc.GetVirtualHosts() {
		vh.Routes = append(append([]*routev3.Route(nil), guard...), vh.Routes...)
	}
}

// frontingRoutes are the 421 routes of one server_names entry: for
// partners.example.com, the authorities partners.example.com and
// partners.example.com. exactly, and those followed by ":" (a port); for
// *.partners.example.com, those ending in .partners.example.com or
// .partners.example.com. and those holding either followed by ":".
func frontingRoutes(name string) []*routev3.Route {
	var ms []*matcherv3.StringMatcher
	if suffix, ok := strings.CutPrefix(name, "*"); ok {
		ms = []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: suffix}},
			{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: suffix + "."}},
			{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: suffix + ":"}},
			{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: suffix + ".:"}},
		}
	} else {
		ms = []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: name}},
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: name + "."}},
			{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: name + ":"}},
			{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: name + ".:"}},
		}
	}
	out := make([]*routev3.Route, 0, len(ms))
	for _, m := range ms {
		m.IgnoreCase = true
		out = append(out, &routev3.Route{
			Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers: []*routev3.HeaderMatcher{{
					Name:                 authorityHeader,
					HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m},
				}},
			},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: MisdirectedStatus,
				Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: MisdirectedBody}},
			}},
		})
	}
	return out
}
