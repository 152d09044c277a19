package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// xfccHeader is Envoy's x-forwarded-client-cert.
const xfccHeader = "X-Forwarded-Client-Cert"

// exchange carries one request's routing decision through ReverseProxy.
type exchange struct {
	conn    *trackedConn // nil outside a tracked connection
	chain   *chainState
	routes  *routeTable
	vhost   *vhost
	route   *route
	cluster *clusterState
	host    *host
	body    *requestBody // nil without a body
	status  int
	err     error
	// streamTimeout is set when the request body stalled for
	// stream_idle_timeout.
	streamTimeout atomic.Bool
	// path is the escaped, normalized request path that routing matches.
	path string
	// originalPath is the request target as received, when path
	// normalization changed it.
	originalPath string
	// limits bound the upstream call and its retries (retry.go).
	limits upstreamLimits
	// upstreamStart is when the first upstream attempt began; zero when
	// no upstream was tried.
	upstreamStart time.Time
}

type exchangeKey struct{}

// ServeHTTP handles one request in Envoy's order: the connection manager
// applies headers_with_underscores_action and path normalization, the
// route table of the connection's filter chain picks a route (a direct
// response or a cluster), round robin picks a host, ReverseProxy forwards.
func (lr *listenerRuntime) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 {
		growStack()
	}
	p := lr.p
	start := time.Now()
	st := p.state.Load()
	ls := st.listeners[lr.name]
	chain := lr.chainOf(ls, r)
	sw := &statusWriter{ResponseWriter: w, idle: 0}
	ex := &exchange{conn: connFrom(r.Context()), chain: chain}
	copyBuffer := maxCopyBuffer
	if ls != nil {
		copyBuffer = ls.copyBuffer
	}
	if r.Body != nil && r.Body != http.NoBody {
		ex.body = &requestBody{ReadCloser: r.Body, max: copyBuffer}
		r.Body = ex.body
	}
	defer func() { p.logRequest(requestLogName(lr.name, chain), r, ex, sw, start) }()
	if chain == nil {
		sw.fail(http.StatusServiceUnavailable, "no filter chain")
		return
	}
	hcm := chain.hcm
	sw.idle = hcm.streamIdleTimeout
	defer sw.clearDeadline()
	if !lr.underscores(hcm, r, sw) || !normalizeRequestPath(hcm, r, ex, sw) {
		return
	}
	if !lr.pickRoute(st, r, ex, sw) {
		return
	}
	if it := ex.route.idleTimeout; it != nil {
		sw.idle = *it // the route's idle_timeout replaces the stream's
	}
	ex.limits = upstreamLimits{idle: sw.idle, bufferLimit: ls.retryBufferLimit()}
	ctx := context.WithValue(r.Context(), exchangeKey{}, ex)
	if ex.route.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ex.route.timeout)
		defer cancel()
	}
	if sw.idle > 0 && ex.body != nil {
		r.Body = &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: sw.idle, timedOut: &ex.streamTimeout}
	}
	if r.ProtoMajor == 1 {
		// Relay the request body while the response streams back, as
		// Envoy does; by default net/http would discard the rest of the
		// body once the response starts.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	p.reverseProxy(copyBuffer).ServeHTTP(sw, r.WithContext(ctx))
}

// stackReserve is the stack growStack reserves: with the guard and the
// frames above it, the runtime's next size up (16 KiB) holds the whole
// request path down to the upstream exchange.
const stackReserve = 12 << 10

// stackSink keeps growStack's frame from being optimized away.
var stackSink atomic.Uint32

// growStack grows a new goroutine's stack in one step while it is shallow.
// net/http serves every HTTP/2 stream on a new goroutine, which starts with
// the runtime's smallest stack (2 KiB while the adaptive start size has not
// grown, and it rarely has: GC is rare and most goroutines are idle
// connections); the proxy path then doubled it several times, copying an
// ever deeper stack each time (issue 14: about 6% of the CPU of an HTTP/2
// request, in runtime.newstack). One frame of stackReserve bytes makes the
// runtime allocate, once, a stack the whole path fits in. HTTP/1.1 requests
// run on the connection's goroutine, whose stack has grown already.
//
//go:noinline
func growStack() {
	var b [stackReserve]byte
	b[stackSink.Load()%stackReserve] = 1
	stackSink.Store(uint32(b[0]))
}

// chainOf is the filter chain that admitted the request's connection, in
// its current version.
func (lr *listenerRuntime) chainOf(ls *listenerState, r *http.Request) *chainState {
	tc := connFrom(r.Context())
	if tc == nil {
		return nil
	}
	tc.mu.Lock()
	chain := tc.chain
	tc.mu.Unlock()
	if ls != nil && chain != nil {
		if c := ls.chainByName(chain.name); c != nil {
			return c
		}
	}
	return chain
}

// underscores applies headers_with_underscores_action before anything
// reads the headers (identity, routing, logging): it counts and drops them,
// or refuses the request with 400.
func (lr *listenerRuntime) underscores(hcm *hcmSettings, r *http.Request, sw *statusWriter) bool {
	names, ok := dropUnderscoreHeaders(hcm.underscores, r)
	if len(names) == 0 {
		return true
	}
	if !ok {
		lr.p.metrics.underscoreRejected.WithLabelValues(lr.name).Inc()
		lr.p.log.Debug("request refused: header name with underscore", "listener", lr.name, "headers", names)
		if r.ProtoMajor == 1 {
			sw.Header().Set("Connection", "close")
		}
		sw.fail(http.StatusBadRequest, "header name with underscore")
		return false
	}
	lr.p.metrics.underscoreDropped.WithLabelValues(lr.name).Add(float64(len(names)))
	lr.p.log.Debug("request headers with underscores dropped", "listener", lr.name, "headers", names)
	return true
}

// normalizeRequestPath applies the connection manager's path settings to
// the request target before routing; the normalized target is what is
// routed, logged and forwarded.
func normalizeRequestPath(hcm *hcmSettings, r *http.Request, ex *exchange, sw *statusWriter) bool {
	raw := requestTarget(r)
	if raw == "*" {
		ex.path = raw
		return true
	}
	target, verdict := hcm.path.apply(raw)
	switch verdict {
	case pathReject:
		sw.fail(http.StatusBadRequest, "path normalization failed")
		return false
	case pathRedirect:
		sw.detail = "path redirected"
		sw.Header().Set("Location", target)
		sw.WriteHeader(http.StatusTemporaryRedirect)
		return false
	}
	if target != raw {
		ex.originalPath = r.RequestURI
	}
	ex.path, _, _ = strings.Cut(target, "?")
	setRequestTarget(r, target)
	return true
}

// pickRoute picks the route and, for a cluster route, the cluster and host;
// it answers the request itself otherwise (no route, direct_response, no
// healthy host). It reports whether the request is to be forwarded.
func (lr *listenerRuntime) pickRoute(st *state, r *http.Request, ex *exchange, sw *statusWriter) bool {
	ex.routes = st.routes[ex.chain.hcm.routeName]
	if ex.routes == nil {
		sw.fail(http.StatusNotFound, "route configuration not found")
		return false
	}
	facts := requestFacts{header: r.Header, method: r.Method, authority: r.Host, presented: r.TLS != nil && len(r.TLS.PeerCertificates) > 0}
	ex.vhost, ex.route = ex.routes.match(r.Host, ex.path, facts)
	if !lr.authorize(ex, r.TLS, sw) {
		return false
	}
	switch {
	case ex.route == nil:
		sw.fail(http.StatusNotFound, "no route matched")
		return false
	case ex.route.direct != nil:
		sw.fail(ex.route.direct.status, ex.route.direct.body)
		sw.detail = "direct_response"
		return false
	}
	ex.cluster = st.clusters[ex.route.cluster]
	if ex.cluster == nil {
		sw.fail(http.StatusServiceUnavailable, "cluster not found")
		return false
	}
	ex.host = ex.cluster.pick(time.Now())
	if ex.host == nil {
		sw.fail(http.StatusServiceUnavailable, "no healthy upstream")
		return false
	}
	return true
}

// requestTarget is the request's path and query as the client sent them
// (Envoy's :path): net/http keeps the origin form in RequestURI; an
// absolute-form target is reduced to its path and query.
func requestTarget(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// setRequestTarget makes target (escaped path and query) the request's
// target, so that the log shows it and the upstream request line carries
// it byte for byte, as Envoy forwards :path.
func setRequestTarget(r *http.Request, target string) {
	path, query, _ := strings.Cut(target, "?")
	if target == r.RequestURI && r.URL.Opaque == "" && r.URL.RawQuery == query && r.URL.EscapedPath() == path {
		return // as received, and net/http forwards it so
	}
	r.RequestURI = target
	r.URL.RawQuery = query
	r.URL.ForceQuery = strings.HasSuffix(target, "?")
	unescaped, err := url.PathUnescape(path)
	if err != nil {
		unescaped = path
	}
	r.URL.Path, r.URL.RawPath, r.URL.Opaque = unescaped, path, ""
	if r.URL.EscapedPath() != path && !strings.HasPrefix(path, "//") {
		// net/http would re-escape characters Envoy leaves alone (| ^):
		// an opaque URL is written to the request line as it is.
		r.URL.Opaque = path
	}
}

// reverseProxy returns the ReverseProxy whose response copy buffers have
// the given size, one per size in use.
func (p *Proxy) reverseProxy(copyBuffer int) *httputil.ReverseProxy {
	if rp, ok := p.rps.Load(copyBuffer); ok {
		return rp.(*httputil.ReverseProxy)
	}
	rp, _ := p.rps.LoadOrStore(copyBuffer, p.newReverseProxy(newCopyBuffers(copyBuffer)))
	return rp.(*httputil.ReverseProxy)
}

// newReverseProxy builds a ReverseProxy; the per-request decision travels
// in the request context.
func (p *Proxy) newReverseProxy(buffers httputil.BufferPool) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:    rewrite,
		BufferPool: buffers,
		Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
			return p.roundTrip(r.Context().Value(exchangeKey{}).(*exchange), r)
		}),
		ModifyResponse: func(resp *http.Response) error {
			ex := resp.Request.Context().Value(exchangeKey{}).(*exchange)
			ex.status = resp.StatusCode
			p.outlierReport(ex, outcomeOf(resp.StatusCode))
			return nil
		},
		ErrorHandler: p.upstreamError,
		ErrorLog:     nil,
	}
}

// upstreamError answers a request that got no upstream response. Only a
// failure of the upstream counts toward outlier detection: a stalled or
// broken request body and a client that went away are the client's doing.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	ex := r.Context().Value(exchangeKey{}).(*exchange)
	ex.err = err
	switch {
	case ex.streamTimeout.Load():
		// The client stalled its body: Envoy's stream idle timer
		// answers 408 and closes; the upstream is not at fault.
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestTimeout)
		_, _ = w.Write([]byte("stream timeout"))
	case clientFault(ex.body, err):
		// Envoy answers a downstream protocol error (a malformed chunked
		// body, a body cut short) with 400 and closes.
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("bad request body"))
	case errors.As(err, new(*streamIdleError)):
		// The stream idle timer fired while waiting for the upstream.
		p.streamIdleReply(w, err)
	case errors.Is(r.Context().Err(), context.Canceled):
		// The client went away: not the upstream's fault.
		w.WriteHeader(499)
	case errors.Is(r.Context().Err(), context.DeadlineExceeded):
		p.outlierReport(ex, outcomeGateway)
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = w.Write([]byte("upstream request timeout"))
	default:
		p.outlierReport(ex, outcomeGateway)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("upstream connect error or disconnect/reset before headers"))
	}
}

func (p *Proxy) outlierReport(ex *exchange, o outcome) {
	if ex.cluster.report(ex.host, o, time.Now()) {
		p.log.Warn("outlier detection ejected host", "cluster", ex.cluster.name, "host", ex.host.addr)
	}
}

// rewrite shapes the upstream request as Envoy's HTTP connection manager,
// its HTTP filters and its router do with certplane's settings, in that
// order.
func rewrite(pr *httputil.ProxyRequest) {
	ex := pr.In.Context().Value(exchangeKey{}).(*exchange)
	out, in := pr.Out, pr.In
	out.URL.Scheme = ex.cluster.scheme
	out.URL.Host = ex.host.addr
	out.Host = in.Host // Envoy forwards the original authority
	// ReverseProxy drops these before Rewrite; Envoy passes them through.
	for _, h := range []string{"Forwarded", "X-Forwarded-Host"} {
		if v, ok := in.Header[h]; ok {
			out.Header[h] = v
		}
	}
	// use_remote_address: append the peer address to X-Forwarded-For.
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			out.Header.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+ip)
		} else {
			out.Header.Set("X-Forwarded-For", ip)
		}
	}
	out.Header.Set("X-Forwarded-Proto", "https")
	// Request trailers are dropped, as Envoy drops HTTP/1 trailers unless
	// enable_trailers is set (certplane never sets it): a trailer would
	// carry a forged identity header past every sanitization above, and
	// backends that merge trailers into headers would believe it.
	out.Trailer = nil
	ex.forwardClientCert(out.Header, in.TLS)
	for _, m := range ex.chain.hcm.mutations {
		m.apply(out.Header)
	}
	// The router: route, virtual host, then route configuration headers,
	// each level removing before adding; the least specific level is
	// applied last and wins (Envoy's default,
	// most_specific_header_mutations_wins false).
	for _, ops := range []*headerOps{&ex.route.ops, &ex.vhost.headers, &ex.routes.headers} {
		ex.applyHeaderOps(out.Header, ops, in.TLS)
	}
}

// applyHeaderOps applies one level's request_headers_to_remove and
// request_headers_to_add.
func (ex *exchange) applyHeaderOps(h http.Header, ops *headerOps, cs *tls.ConnectionState) {
	for _, name := range ops.remove {
		h.Del(name)
	}
	for _, a := range ops.add {
		v, err := ex.conn.expandHeader(a.format, cs)
		if err != nil || (v == "" && !a.keepEmpty) {
			continue
		}
		applyHeader(h, a, v)
	}
}

// applyHeader applies one request_headers_to_add entry per its append_action.
func applyHeader(h http.Header, a headerAdd, v string) {
	_, exists := h[http.CanonicalHeaderKey(a.key)]
	switch a.action {
	case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		h.Add(a.key, v)
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		if !exists {
			h.Set(a.key, v)
		}
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		h.Set(a.key, v)
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		if exists {
			h.Set(a.key, v)
		}
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// logRequest writes the request-log line and counts the request. Its keys
// are those of Envoy's HTTP access log; see the table in connlog.go.
func (p *Proxy) logRequest(listener string, r *http.Request, ex *exchange, sw *statusWriter, start time.Time) {
	d := time.Since(start)
	cluster, upstream := "", ""
	if ex.cluster != nil {
		cluster = ex.cluster.name
	}
	if ex.host != nil {
		upstream = ex.host.addr
	}
	var received int64
	if ex.body != nil {
		received = ex.body.n.Load()
	}
	code := sw.code()
	p.metrics.requests.WithLabelValues(listener, cluster, upstream, strconv.Itoa(code)).Inc()
	route, class := "", codeClass(code)
	if ex.route != nil {
		route = ex.route.label()
	}
	p.metrics.requestDuration.WithLabelValues(listener, route, cluster, class).Observe(d.Seconds())
	if !ex.upstreamStart.IsZero() {
		p.metrics.upstreamDuration.WithLabelValues(listener, route, cluster, class).Observe(time.Since(ex.upstreamStart).Seconds())
	}
	if p.opts.NoRequestLog {
		return
	}
	l := requestLine{
		start: start, listener: listener, client: r.RemoteAddr, method: r.Method, authority: r.Host,
		path: r.RequestURI, proto: protocolName(r), status: code, cluster: cluster, upstream: upstream,
		duration: d, received: received, sent: sw.bytes, detail: sw.detail, originalPath: ex.originalPath,
	}
	if ex.err != nil {
		l.upstreamError = ex.err.Error()
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		l.peer = true
		l.peerSubject, l.peerSerial = ex.conn.peerLogFields(r.TLS.PeerCertificates[0])
	}
	if p.opts.ConnLogOut != nil {
		writeRequestLine(p.opts.ConnLogOut, time.Now(), &l)
		return
	}
	p.connLog.LogAttrs(context.Background(), slog.LevelInfo, "request", l.attrs()...)
}

// attrs are the line's slog attributes, for a ConnLog without ConnLogOut.
func (l *requestLine) attrs() []slog.Attr {
	// Room for the optional attributes below: appending to a full literal
	// would copy the slice on most requests.
	attrs := make([]slog.Attr, 0, 18)
	attrs = append(attrs,
		slog.String("event", "request"),
		slog.String(keyStartTime, envoyTime(l.start)),
		slog.String("listener", l.listener),
		slog.String("client", l.client),
		slog.String("method", l.method),
		slog.String("authority", l.authority),
		slog.String("path", l.path),
		slog.String("protocol", l.proto),
		slog.Int("status", l.status),
		slog.String("upstream_cluster", l.cluster),
		slog.String("upstream_host", l.upstream),
		slog.Float64("duration_ms", float64(l.duration.Microseconds())/1000),
		slog.Int64("bytes_received", l.received),
		slog.Int64("bytes_sent", l.sent),
	)
	if l.detail != "" {
		attrs = append(attrs, slog.String("detail", l.detail))
	}
	if l.originalPath != "" {
		attrs = append(attrs, slog.String("original_path", l.originalPath))
	}
	if l.upstreamError != "" {
		attrs = append(attrs, slog.String("upstream_error", l.upstreamError))
	}
	if l.peer {
		attrs = append(attrs, slog.String("peer_subject", l.peerSubject), slog.String("peer_serial", l.peerSerial))
	}
	return attrs
}

// protocolName prints the protocol as Envoy's %PROTOCOL% does.
func protocolName(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "HTTP/2"
	}
	return r.Proto
}
