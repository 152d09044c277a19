package envoy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/certplane/certplane/config"
)

// goldenCase is one golden case's model and the resources of all its
// listeners, merged.
type goldenCase struct {
	name string
	m    *config.Model
	s    Set
}

func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("testdata", "*", "input"))
	if err != nil {
		t.Fatal(err)
	}
	var out []goldenCase
	for _, in := range dirs {
		dir := filepath.Dir(in)
		m := loadCase(t, dir)
		units, err := Translate(m)
		if err != nil {
			t.Fatalf("%s: Translate: %v", dir, err)
		}
		var sets []Set
		for _, u := range units {
			sets = append(sets, u)
		}
		s, err := Merge(sets...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, goldenCase{name: filepath.Base(dir), m: m, s: s})
	}
	return out
}

// connectionManagers returns every HTTP connection manager of lis, in every
// filter chain and the default chain.
func connectionManagers(t *testing.T, lis *listenerv3.Listener) []*hcmv3.HttpConnectionManager {
	t.Helper()
	var out []*hcmv3.HttpConnectionManager
	if err := walk(lis.ProtoReflect(), func(m protoreflect.Message) {
		if h, ok := m.Interface().(*hcmv3.HttpConnectionManager); ok {
			out = append(out, h)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("listener %q has no HTTP connection manager", lis.GetName())
	}
	return out
}

func modelListener(m *config.Model, name string) *config.Listener {
	for _, l := range m.Listeners {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// Envoy's "Configuring Envoy as an edge proxy" values, on every listener,
// connection manager and cluster certplane emits.
func TestEdgeProxyGuidance(t *testing.T) {
	for _, gc := range goldenCases(t) {
		for _, r := range gc.s.Sorted(resource.ListenerType) {
			lis := r.(*listenerv3.Listener)
			where := gc.name + "/" + lis.GetName()
			if got := lis.GetPerConnectionBufferLimitBytes().GetValue(); got != 32768 {
				t.Errorf("%s: listener per_connection_buffer_limit_bytes = %d, want 32768", where, got)
			}
			want := corev3.HttpProtocolOptions_DROP_HEADER
			if l := modelListener(gc.m, lis.GetName()); l != nil && l.HTTP.HeadersWithUnderscores == config.UnderscoresReject {
				want = corev3.HttpProtocolOptions_REJECT_REQUEST
			}
			for _, h := range connectionManagers(t, lis) {
				if got := h.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); got != want {
					t.Errorf("%s: headers_with_underscores_action = %v, want %v", where, got, want)
				}
				if !h.GetNormalizePath().GetValue() || !h.GetMergeSlashes() {
					t.Errorf("%s: normalize_path %v, merge_slashes %v, want both true", where, h.GetNormalizePath(), h.GetMergeSlashes())
				}
				if got := h.GetPathWithEscapedSlashesAction(); got != hcmv3.HttpConnectionManager_REJECT_REQUEST {
					t.Errorf("%s: path_with_escaped_slashes_action = %v, want REJECT_REQUEST", where, got)
				}
				h2 := h.GetHttp2ProtocolOptions()
				if h2.GetMaxConcurrentStreams().GetValue() != 100 || h2.GetInitialStreamWindowSize().GetValue() != 65536 || h2.GetInitialConnectionWindowSize().GetValue() != 1048576 {
					t.Errorf("%s: http2_protocol_options = %v, want 100 streams, 64 KiB stream and 1 MiB connection windows", where, h2)
				}
				if !h.GetUseRemoteAddress().GetValue() || h.GetXffNumTrustedHops() != 0 {
					t.Errorf("%s: use_remote_address %v, xff_num_trusted_hops %d", where, h.GetUseRemoteAddress(), h.GetXffNumTrustedHops())
				}
				if h.GetRequestHeadersTimeout().AsDuration() != RequestHeadersTimeout || h.GetStreamIdleTimeout().AsDuration() != StreamIdleTimeout ||
					h.GetCommonHttpProtocolOptions().GetIdleTimeout().AsDuration() != IdleTimeout {
					t.Errorf("%s: timeouts request_headers %v, stream_idle %v, idle %v", where,
						h.GetRequestHeadersTimeout(), h.GetStreamIdleTimeout(), h.GetCommonHttpProtocolOptions().GetIdleTimeout())
				}
			}
		}
		for _, r := range gc.s.Sorted(resource.ClusterType) {
			c := r.(*clusterv3.Cluster)
			if got := c.GetPerConnectionBufferLimitBytes().GetValue(); got != 32768 {
				t.Errorf("%s: cluster %q per_connection_buffer_limit_bytes = %d, want 32768", gc.name, c.GetName(), got)
			}
		}
	}
}

// Every connection manager removes, before any other filter, every header
// named like one certplane may set for ALB compatibility, whatever
// client_cert_headers says; XFCC is sanitized by the connection manager.
func TestIdentityHeadersRemovedFirst(t *testing.T) {
	for _, gc := range goldenCases(t) {
		for _, r := range gc.s.Sorted(resource.ListenerType) {
			lis := r.(*listenerv3.Listener)
			where := gc.name + "/" + lis.GetName()
			for _, h := range connectionManagers(t, lis) {
				switch h.GetForwardClientCertDetails() {
				case hcmv3.HttpConnectionManager_SANITIZE, hcmv3.HttpConnectionManager_SANITIZE_SET:
				case hcmv3.HttpConnectionManager_APPEND_FORWARD, hcmv3.HttpConnectionManager_FORWARD_ONLY:
					// Only where the operator chose it (xfcc mode); never
					// ALWAYS_FORWARD_ONLY, which forwards without a certificate.
					if !strings.HasPrefix(gc.name, "xfcc-") {
						t.Errorf("%s: forward_client_cert_details = %v outside the xfcc-* cases", where, h.GetForwardClientCertDetails())
					}
				default:
					t.Errorf("%s: forward_client_cert_details = %v, want SANITIZE or SANITIZE_SET", where, h.GetForwardClientCertDetails())
				}
				fs := h.GetHttpFilters()
				if len(fs) < 2 || fs[0].GetName() != HeaderMutationName || fs[len(fs)-1].GetName() != RouterName {
					var names []string
					for _, f := range fs {
						names = append(names, f.GetName())
					}
					t.Errorf("%s: http_filters %v, want %s first and %s last", where, names, HeaderMutationName, RouterName)
					continue
				}
				var hm headermutationv3.HeaderMutation
				if err := fs[0].GetTypedConfig().UnmarshalTo(&hm); err != nil {
					t.Fatal(err)
				}
				removed := map[string]bool{}
				for _, mu := range hm.GetMutations().GetRequestMutations() {
					km := mu.GetRemoveOnMatch().GetKeyMatcher()
					if km == nil || !km.GetIgnoreCase() {
						t.Errorf("%s: request mutation %v, want remove_on_match with ignore_case", where, mu)
						continue
					}
					removed["exact:"+km.GetExact()+"prefix:"+km.GetPrefix()] = true
				}
				for _, k := range []string{"exact:x-amzn-mtls-clientcertprefix:", "exact:prefix:x-amzn-mtls-clientcert-"} {
					if !removed[k] {
						t.Errorf("%s: header_mutation does not remove %s", where, k)
					}
				}
			}
		}
	}
}

// Identity headers are added only on routes that require a presented
// certificate: a client without one gets none, not an empty or
// "NotBefore=;NotAfter=" value. A listener where a certificate is optional
// still routes clients without one.
func TestIdentityHeadersOnlyWithCertificate(t *testing.T) {
	for _, gc := range goldenCases(t) {
		for _, r := range gc.s.Sorted(resource.RouteType) {
			rc := r.(*routev3.RouteConfiguration)
			where := gc.name + "/" + rc.GetName()
			for _, h := range rc.GetRequestHeadersToAdd() {
				if strings.HasPrefix(h.GetHeader().GetKey(), "x-amzn-mtls-clientcert") {
					t.Errorf("%s: route configuration adds %s to every request, certificate or not", where, h.GetHeader().GetKey())
				}
			}
			l := modelListener(gc.m, rc.GetName())
			groups := map[string][]config.Route{}
			for _, g := range VirtualHosts(l) {
				groups[g.Name] = g.Routes
			}
			for _, vh := range rc.GetVirtualHosts() {
				// A route is known by its backend and path: the same prefix
				// may go to two backends in one virtual host (by header).
				key := func(cluster, prefix, path string) string { return cluster + " " + prefix + path }
				withCert, without := map[string]bool{}, map[string]bool{}
				for _, rt := range vh.GetRoutes() {
					if rt.GetRoute() == nil {
						continue
					}
					adds := false
					for _, h := range rt.GetRequestHeadersToAdd() {
						adds = adds || strings.HasPrefix(h.GetHeader().GetKey(), "x-amzn-mtls-clientcert")
					}
					k := key(rt.GetRoute().GetCluster(), rt.GetMatch().GetPrefix(), rt.GetMatch().GetPath())
					presented := rt.GetMatch().GetTlsContext().GetPresented().GetValue()
					if adds && !presented {
						t.Errorf("%s: route %s adds ALB headers without requiring a presented certificate", where, k)
					}
					if presented {
						withCert[k] = true
					} else {
						without[k] = true
					}
				}
				crs, ok := groups[vh.GetName()]
				if !ok {
					t.Errorf("%s: virtual host %s is not one of VirtualHosts", where, vh.GetName())
				}
				for _, cr := range crs {
					k := key(cr.Backend, cr.PathPrefix, cr.Path)
					alb := slices.Contains(l.ClientCertHeaders, config.HeaderALB)
					if alb && !withCert[k] {
						t.Errorf("%s: no route %s for clients with a certificate", where, k)
					}
					if needs := !alb || l.ClientAuth.Mode != config.ModeVerify; needs != without[k] {
						t.Errorf("%s: route %s for clients without a certificate: %v, want %v", where, k, without[k], needs)
					}
				}
			}
		}
	}
}

// A request that already passed through this listener answers 508: the
// route configuration appends this listener's via token to every forwarded
// request, and the first route of every virtual host matches it.
func TestLoopGuard(t *testing.T) {
	for _, gc := range goldenCases(t) {
		tokens := map[string]string{}
		for _, r := range gc.s.Sorted(resource.RouteType) {
			rc := r.(*routev3.RouteConfiguration)
			where := gc.name + "/" + rc.GetName()
			var via *corev3.HeaderValueOption
			for _, h := range rc.GetRequestHeadersToAdd() {
				if h.GetHeader().GetKey() == "via" {
					via = h
				}
			}
			if via == nil {
				t.Errorf("%s: no via header added to forwarded requests", where)
				continue
			}
			token, ok := strings.CutPrefix(via.GetHeader().GetValue(), "1.1 ")
			if !ok || !strings.HasPrefix(token, "certplane-") || via.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				t.Errorf("%s: via %v, want \"1.1 certplane-<token>\" appended", where, via)
			}
			tokens[rc.GetName()] = token
			for _, vh := range rc.GetVirtualHosts() {
				// The domain fronting guards (421, fronting.go) may come
				// first: they forward nothing either.
				routes := vh.GetRoutes()
				for len(routes) > 1 && routes[0].GetDirectResponse().GetStatus() == MisdirectedStatus {
					routes = routes[1:]
				}
				first := routes[0]
				hm := first.GetMatch().GetHeaders()
				if first.GetMatch().GetPrefix() != "/" || len(hm) != 1 || hm[0].GetName() != "via" || hm[0].GetStringMatch().GetContains() != token ||
					first.GetDirectResponse().GetStatus() != 508 {
					t.Errorf("%s: first route %v, want a 508 for a via containing %q", where, first, token)
				}
			}
		}
		for a, ta := range tokens {
			for b, tb := range tokens {
				if a != b && strings.Contains(tb, ta) {
					t.Errorf("%s: listener %s's token %q is inside listener %s's %q", gc.name, a, ta, b, tb)
				}
			}
		}
	}
}

// The token names a listener within one control plane instance: two
// chained certplanes with a listener of the same name do not take each
// other's requests for loops.
func TestLoopTokenPerInstance(t *testing.T) {
	if LoopToken("https", "a") == LoopToken("https", "b") || LoopToken("https", "a") == LoopToken("api", "a") {
		t.Error("tokens do not depend on both the listener and the instance")
	}
	if a, b := LoopToken("https", "a"), LoopToken("https", "a"); a != b {
		t.Error("token not stable")
	}
	m := goldenModel(t, "mode-verify")
	s, err := NewTranslator(m).WithInstance("cp-1").Unit(m.Listeners[0])
	if err != nil {
		t.Fatal(err)
	}
	rc := s[resource.RouteType]["payments"].(*routev3.RouteConfiguration)
	want := LoopToken("payments", "cp-1")
	if got := rc.GetRequestHeadersToAdd()[0].GetHeader().GetValue(); got != "1.1 "+want {
		t.Errorf("via %q, want 1.1 %s", got, want)
	}
	if got := rc.GetVirtualHosts()[0].GetRoutes()[0].GetMatch().GetHeaders()[0].GetStringMatch().GetContains(); got != want {
		t.Errorf("loop route matches %q, want %s", got, want)
	}
}
