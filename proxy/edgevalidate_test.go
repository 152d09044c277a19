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
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/certplane/certplane/xds/client"
)

// TestEdgeFieldsNACK: the issue #11 fields with a value the proxy cannot
// honour (or Envoy would refuse) NACK the resource with a message naming
// the field; the contract's values are accepted.
func TestEdgeFieldsNACK(t *testing.T) {
	p := New(Options{})
	spec := listenerSpec{name: "l", certs: []string{"server/x"}, mode: "off", alb: true, routes: [][2]string{{"/", "b"}}}
	msgs := spec.build()
	if err := p.Validate("", []proto.Message{msgs[0].(*listenerv3.Listener), msgs[1].(*routev3.RouteConfiguration)}); err != nil {
		t.Fatalf("contract resources refused: %v", err)
	}
	hcm := func(f func(*hcmv3.HttpConnectionManager)) proto.Message {
		l := proto.Clone(msgs[0]).(*listenerv3.Listener)
		mutateHCM(l.FilterChains[0], f)
		return l
	}
	route := func(f func(*routev3.Route)) proto.Message {
		rc := proto.Clone(msgs[1]).(*routev3.RouteConfiguration)
		f(rc.VirtualHosts[0].Routes[0])
		return rc
	}
	mutation := func(m *mutationv3.HeaderMutation) func(*hcmv3.HttpConnectionManager) {
		return func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters[0].ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&headermutationv3.HeaderMutation{
				Mutations: &headermutationv3.Mutations{RequestMutations: []*mutationv3.HeaderMutation{m}},
			})}
		}
	}
	for _, c := range []struct {
		name string
		msg  proto.Message
		want string
	}{
		{"stream window", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.Http2ProtocolOptions.InitialStreamWindowSize = wrapperspb.UInt32(1000)
		}),
			"http2_protocol_options: initial_stream_window_size 1000 is out of range 65535..2147483647"},
		{"streams", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.Http2ProtocolOptions.MaxConcurrentStreams = wrapperspb.UInt32(0)
		}),
			"http2_protocol_options: max_concurrent_streams 0 is out of range 1..2147483647"},
		{"unimplemented http2 option", hcm(func(h *hcmv3.HttpConnectionManager) { h.Http2ProtocolOptions.AllowConnect = true }),
			"http2_protocol_options.allow_connect is set but not implemented by certplane proxy"},
		{"router not last", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters[0], h.HttpFilters[1] = h.HttpFilters[1], h.HttpFilters[0]
		}),
			"http_filters: the last filter must be envoy.filters.http.router"},
		{"mutation append", hcm(mutation(&mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
			Header: &corev3.HeaderValue{Key: "x", Value: "y"}}}})),
			"request_mutations[0].append is set but not implemented by certplane proxy"},
		{"mutation empty remove", hcm(mutation(&mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{}})),
			"http_filters[0].mutations.request_mutations[0]: remove is empty"},
		{"tls_context validated", route(func(r *routev3.Route) {
			r.Match.TlsContext = &routev3.RouteMatch_TlsContextMatchOptions{Validated: wrapperspb.Bool(true)}
		}), "match.tls_context.validated is set but not implemented by certplane proxy"},
		{"direct response status", route(func(r *routev3.Route) {
			r.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 99}}
		}), "virtual_hosts[0].routes[0].direct_response: status 99 is out of range 200..599"},
		{"pseudo-header matcher", route(func(r *routev3.Route) { r.Match.Headers[0].Name = ":path" }),
			`virtual_hosts[0].routes[0].match.headers[0]: pseudo-header ":path" is not implemented by certplane proxy`},
		{"header range matcher", route(func(r *routev3.Route) {
			r.Match.Headers[0].HeaderMatchSpecifier = &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: 1, End: 2}}
		}), "range_match is set but not implemented by certplane proxy"},
	} {
		err := p.Validate("", []proto.Message{c.msg})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v\nwant an error containing %q", c.name, err, c.want)
		}
		// Prepare takes these errors from its candidate's build: the
		// client must send the very same error_detail.
		view := (&resourceSet{}).add(c.msg).view()
		commit, perr := p.Prepare(client.Change{Resources: []proto.Message{c.msg}, View: view})
		if commit != nil || perr == nil || err == nil || perr.Error() != err.Error() {
			t.Errorf("%s: Prepare refused with %v, Validate with %v", c.name, perr, err)
		}
	}
}
