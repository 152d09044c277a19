package proxy

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/certplane/certplane/proxy/mtls"
)

const headerMutationFilterName = "envoy.filters.http.header_mutation"

// headerMutation is one request mutation of a header_mutation filter: it
// removes the header named remove, or every header whose (lower-case) name
// matches removeMatch.
type headerMutation struct {
	remove      string
	removeMatch *mtls.StringMatcher
	// verdicts remembers removeMatch's answer per header name as net/http
	// stores it (canonical): every request carries the same few names, and
	// lower-casing and matching each of them per request showed in the
	// keep-alive profile (issue 14).
	verdicts *nameVerdicts
}

// maxNameVerdicts bounds the names remembered; past it (a client sending
// ever new names), names are matched without being remembered.
const maxNameVerdicts = 512

type nameVerdicts struct {
	m sync.Map // canonical name → bool
	n atomic.Int32
}

// matches reports whether the lower-cased name k matches m.
func (m headerMutation) matches(k string) bool {
	if v, ok := m.verdicts.m.Load(k); ok {
		return v.(bool)
	}
	hit := m.removeMatch.Match(strings.ToLower(k))
	if m.verdicts.n.Load() < maxNameVerdicts {
		if _, loaded := m.verdicts.m.LoadOrStore(k, hit); !loaded {
			m.verdicts.n.Add(1)
		}
	}
	return hit
}

// httpFilters is what the proxy honours of a connection manager's filters.
type httpFilters struct {
	mutations []headerMutation // request mutations, in filter order
	rbacSet   bool             // the RBAC filter is in the chain
	rbac      *rbacConfig      // its config
}

// checkHTTPFilters accepts header_mutation filters, then at most one RBAC
// filter, then the router, last: the order certplane emits (identity
// headers stripped before anything reads the request).
func checkHTTPFilters(filters []*hcmv3.HttpFilter) (httpFilters, error) {
	var out httpFilters
	if len(filters) == 0 || filters[len(filters)-1].GetName() != routerFilterName {
		return out, fmt.Errorf("http_filters: the last filter must be %s", routerFilterName)
	}
	for i, f := range filters[:len(filters)-1] {
		if f.GetName() == rbacFilterName {
			if out.rbacSet {
				return out, fmt.Errorf("http_filters[%d]: a second %s is not implemented by certplane proxy", i, rbacFilterName)
			}
			var r rbacv3.RBAC
			if err := f.GetTypedConfig().UnmarshalTo(&r); err != nil {
				return out, fmt.Errorf("http_filters[%d].typed_config is not an RBAC: %w", i, err)
			}
			cfg, err := buildRBAC(&r)
			if err != nil {
				return out, fmt.Errorf("http_filters[%d] %s: %w", i, rbacFilterName, err)
			}
			out.rbacSet, out.rbac = true, cfg
			continue
		}
		if f.GetName() != headerMutationFilterName {
			return out, fmt.Errorf("http_filters[%d]: %q is not implemented by certplane proxy (only %s and %s before %s)", i, f.GetName(), headerMutationFilterName, rbacFilterName, routerFilterName)
		}
		if out.rbacSet {
			return out, fmt.Errorf("http_filters[%d]: %s after %s is not implemented by certplane proxy", i, headerMutationFilterName, rbacFilterName)
		}
		var hm headermutationv3.HeaderMutation
		if err := f.GetTypedConfig().UnmarshalTo(&hm); err != nil {
			return out, fmt.Errorf("http_filters[%d].typed_config is not a HeaderMutation: %w", i, err)
		}
		for j, m := range hm.GetMutations().GetRequestMutations() {
			hmut, err := buildHeaderMutation(m)
			if err != nil {
				return out, fmt.Errorf("http_filters[%d].mutations.request_mutations[%d]: %w", i, j, err)
			}
			out.mutations = append(out.mutations, hmut)
		}
	}
	return out, nil
}

func buildHeaderMutation(m *mutationv3.HeaderMutation) (headerMutation, error) {
	switch a := m.GetAction().(type) {
	case *mutationv3.HeaderMutation_Remove:
		if a.Remove == "" {
			return headerMutation{}, errors.New("remove is empty")
		}
		return headerMutation{remove: strings.ToLower(a.Remove)}, nil
	case *mutationv3.HeaderMutation_RemoveOnMatch_:
		sm, err := mtls.CompileStringMatcher(a.RemoveOnMatch.GetKeyMatcher())
		if err != nil {
			return headerMutation{}, fmt.Errorf("remove_on_match.key_matcher: %w", err)
		}
		return headerMutation{removeMatch: sm, verdicts: &nameVerdicts{}}, nil
	}
	return headerMutation{}, errors.New("only remove and remove_on_match are implemented by certplane proxy")
}

// apply removes the headers the mutation names from h.
func (m headerMutation) apply(h http.Header) {
	if m.removeMatch == nil {
		h.Del(m.remove)
		return
	}
	for k := range h {
		if m.matches(k) {
			delete(h, k)
		}
	}
}

// pathSettings reads normalize_path, merge_slashes and
// path_with_escaped_slashes_action. Unset, they are Envoy's defaults: no
// normalization, no merging, and escaped slashes kept
// (IMPLEMENTATION_SPECIFIC_DEFAULT is KEEP_UNCHANGED in Envoy).
func pathSettings(h *hcmv3.HttpConnectionManager) pathConfig {
	return pathConfig{
		normalize: h.GetNormalizePath().GetValue(),
		merge:     h.GetMergeSlashes(),
		escaped:   h.GetPathWithEscapedSlashesAction(),
	}
}

// http2Settings applies http2_protocol_options to the server settings.
// Envoy's ranges are enforced; Go honours every value in them.
func http2Settings(o *corev3.Http2ProtocolOptions, s *serverSettings) error {
	if o == nil {
		return nil
	}
	if v := o.GetMaxConcurrentStreams(); v != nil {
		if v.GetValue() < 1 || v.GetValue() > math.MaxInt32 {
			return fmt.Errorf("max_concurrent_streams %d is out of range 1..2147483647", v.GetValue())
		}
		s.maxConcurrentStreams = int(v.GetValue())
	}
	if err := windowSize("initial_stream_window_size", o.GetInitialStreamWindowSize(), &s.streamWindow); err != nil {
		return err
	}
	return windowSize("initial_connection_window_size", o.GetInitialConnectionWindowSize(), &s.connectionWindow)
}

func windowSize(name string, v *wrapperspb.UInt32Value, dst *int) error {
	if v == nil {
		return nil
	}
	if v.GetValue() < 65535 || v.GetValue() > math.MaxInt32 {
		return fmt.Errorf("%s %d is out of range 65535..2147483647", name, v.GetValue())
	}
	*dst = int(v.GetValue())
	return nil
}

// http2MaxFrameSize is the SETTINGS_MAX_FRAME_SIZE the proxy advertises:
// the protocol's default, which Envoy keeps. Go's default (1 MiB) would let
// one DATA frame make the server allocate a 1 MiB read buffer.
const http2MaxFrameSize = 16384

// http2Config is the http.Server HTTP/2 configuration for s.
func (s serverSettings) http2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams:          s.maxConcurrentStreams,
		MaxReceiveBufferPerStream:     s.streamWindow,
		MaxReceiveBufferPerConnection: s.connectionWindow,
		MaxReadFrameSize:              http2MaxFrameSize,
	}
}

// maxCopyBuffer is the copy buffer when per_connection_buffer_limit_bytes
// is unset or larger: ReverseProxy's own size.
const maxCopyBuffer = 32 << 10

// bufferLimitChunk turns per_connection_buffer_limit_bytes into the size of
// the buffers a body is relayed through. How the limit bounds what the
// proxy holds for one downstream connection:
//   - The proxy never holds a whole body: it streams. A request body
//     reaches the upstream transport in reads of at most this size
//     (requestBody), and a response body is copied through one buffer of
//     this size (copyBuffers), so body bytes in flight are at most the
//     limit each way per request.
//   - On top of that every connection has fixed buffers that no setting
//     changes: the TLS record layer (one record, at most 16 KiB plus
//     overhead, each way) and net/http's 4 KiB read and 4 KiB write
//     buffers. Headers are bounded by max_request_headers_kb, as in Envoy
//     where that limit is separate from the buffer limit.
//   - HTTP/1.1 carries one request at a time. Over HTTP/2 each stream has
//     its own copy buffers, and request data the client may send ahead is
//     bounded by the flow-control windows (initial_stream_window_size per
//     stream, initial_connection_window_size per connection) and frames
//     by the 16 KiB SETTINGS_MAX_FRAME_SIZE: Envoy's codec buffers the
//     same windows.
//
// A limit above 32 KiB gives 32 KiB buffers (still within the limit).
func bufferLimitChunk(limit *wrapperspb.UInt32Value) int {
	if limit == nil {
		return maxCopyBuffer
	}
	v := limit.GetValue()
	if v == 0 || v > maxCopyBuffer {
		return maxCopyBuffer
	}
	return int(v)
}

// dropUnderscoreHeaders applies headers_with_underscores_action to the
// request headers (and declared trailers): it reports the names found and
// whether the request may go on. DROP_HEADER deletes them; REJECT_REQUEST
// refuses the request; ALLOW keeps them.
func dropUnderscoreHeaders(action corev3.HttpProtocolOptions_HeadersWithUnderscoresAction, r *http.Request) (names []string, ok bool) {
	if action == corev3.HttpProtocolOptions_ALLOW {
		return nil, true
	}
	for _, h := range []http.Header{r.Header, r.Trailer} {
		for k := range h {
			if strings.IndexByte(k, '_') < 0 {
				continue
			}
			names = append(names, k)
			if action == corev3.HttpProtocolOptions_DROP_HEADER {
				delete(h, k)
			}
		}
	}
	return names, action != corev3.HttpProtocolOptions_REJECT_REQUEST || len(names) == 0
}
