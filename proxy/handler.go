package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
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
	cluster *clusterState
	host    *host
	status  int
	err     error
	// streamTimeout is set when the request body stalled for
	// stream_idle_timeout.
	streamTimeout atomic.Bool
}

type exchangeKey struct{}

// ServeHTTP routes one request: the route table of the connection's filter
// chain picks a cluster, round robin picks a host, ReverseProxy forwards.
func (lr *listenerRuntime) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := lr.p
	start := time.Now()
	st := p.state.Load()
	tc := connFrom(r.Context())
	var chain *chainState
	if tc != nil {
		tc.mu.Lock()
		chain = tc.chain
		tc.mu.Unlock()
	}
	if ls := st.listeners[lr.name]; ls != nil && chain != nil {
		if c := ls.chainByName(chain.name); c != nil {
			chain = c
		}
	}
	sw := &statusWriter{ResponseWriter: w, idle: 0}
	ex := &exchange{conn: tc, chain: chain}
	var body *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{ReadCloser: r.Body}
		r.Body = body
	}
	defer func() { p.logRequest(lr.name, r, ex, sw, body, start) }()
	if chain == nil {
		sw.fail(http.StatusServiceUnavailable, "no filter chain")
		return
	}
	sw.idle = chain.hcm.streamIdleTimeout
	defer sw.clearDeadline()
	ex.routes = st.routes[chain.hcm.routeName]
	if ex.routes == nil {
		sw.fail(http.StatusNotFound, "route configuration not found")
		return
	}
	rt := ex.routes.match(r.Host, r.URL.Path)
	if rt == nil {
		sw.fail(http.StatusNotFound, "no route matched")
		return
	}
	ex.cluster = st.clusters[rt.cluster]
	if ex.cluster == nil {
		sw.fail(http.StatusServiceUnavailable, "cluster not found")
		return
	}
	ex.host = ex.cluster.pick(start)
	if ex.host == nil {
		sw.fail(http.StatusServiceUnavailable, "no healthy upstream")
		return
	}
	ctx := context.WithValue(r.Context(), exchangeKey{}, ex)
	if rt.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.timeout)
		defer cancel()
	}
	if sw.idle > 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: sw.idle, timedOut: &ex.streamTimeout}
	}
	p.rp.ServeHTTP(sw, r.WithContext(ctx))
}

// newReverseProxy builds the one ReverseProxy all listeners share; the
// per-request decision travels in the request context.
func (p *Proxy) newReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: rewrite,
		Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
			ex := r.Context().Value(exchangeKey{}).(*exchange)
			return ex.cluster.transport.RoundTrip(r)
		}),
		ModifyResponse: func(resp *http.Response) error {
			ex := resp.Request.Context().Value(exchangeKey{}).(*exchange)
			ex.status = resp.StatusCode
			p.outlierReport(ex, outcomeOf(resp.StatusCode))
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			ex := r.Context().Value(exchangeKey{}).(*exchange)
			ex.err = err
			switch {
			case ex.streamTimeout.Load():
				// The client stalled its body: Envoy's stream idle timer
				// answers 408 and closes; the upstream is not at fault.
				w.Header().Set("Connection", "close")
				w.WriteHeader(http.StatusRequestTimeout)
				_, _ = w.Write([]byte("stream timeout"))
			case errors.Is(r.Context().Err(), context.DeadlineExceeded):
				p.outlierReport(ex, outcomeGateway)
				w.WriteHeader(http.StatusGatewayTimeout)
				_, _ = w.Write([]byte("upstream request timeout"))
			case errors.Is(r.Context().Err(), context.Canceled):
				// The client went away: not the upstream's fault.
				w.WriteHeader(499)
			default:
				p.outlierReport(ex, outcomeGateway)
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("upstream connect error or disconnect/reset before headers"))
			}
		},
		ErrorLog: nil,
	}
}

func (p *Proxy) outlierReport(ex *exchange, o outcome) {
	if ex.cluster.report(ex.host, o, time.Now()) {
		p.log.Warn("outlier detection ejected host", "cluster", ex.cluster.name, "host", ex.host.addr)
	}
}

// rewrite shapes the upstream request as Envoy's HTTP connection manager
// and router do with certplane's settings.
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
	// SANITIZE and SANITIZE_SET both remove any inbound XFCC; SANITIZE_SET
	// then sets it when the client presented a certificate.
	out.Header.Del(xfccHeader)
	if ex.chain.hcm.sanitizeSet && in.TLS != nil && len(in.TLS.PeerCertificates) > 0 {
		out.Header.Set(xfccHeader, ex.conn.xfccValue(ex.chain.leaf, in.TLS.PeerCertificates))
	}
	for _, h := range ex.routes.remove {
		out.Header.Del(h)
	}
	for _, a := range ex.routes.add {
		v, err := ex.conn.expandHeader(a.format, in.TLS)
		if err != nil || (v == "" && !a.keepEmpty) {
			continue
		}
		applyHeader(out.Header, a, v)
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
func (p *Proxy) logRequest(listener string, r *http.Request, ex *exchange, sw *statusWriter, body *countingBody, start time.Time) {
	d := time.Since(start)
	cluster, upstream := "", ""
	if ex.cluster != nil {
		cluster = ex.cluster.name
	}
	if ex.host != nil {
		upstream = ex.host.addr
	}
	var received int64
	if body != nil {
		received = body.n.Load()
	}
	code := sw.code()
	p.metrics.requests.WithLabelValues(listener, cluster, upstream, strconv.Itoa(code)).Inc()
	// Room for the optional attributes below: appending to a full literal
	// would copy the slice on most requests.
	attrs := make([]slog.Attr, 0, 17)
	attrs = append(attrs,
		slog.String("event", "request"),
		slog.String(keyStartTime, envoyTime(start)),
		slog.String("listener", listener),
		slog.String("client", r.RemoteAddr),
		slog.String("method", r.Method),
		slog.String("authority", r.Host),
		slog.String("path", r.RequestURI),
		slog.String("protocol", protocolName(r)),
		slog.Int("status", code),
		slog.String("upstream_cluster", cluster),
		slog.String("upstream_host", upstream),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.Int64("bytes_received", received),
		slog.Int64("bytes_sent", sw.bytes),
	)
	if sw.detail != "" {
		attrs = append(attrs, slog.String("detail", sw.detail))
	}
	if ex.err != nil {
		attrs = append(attrs, slog.String("upstream_error", ex.err.Error()))
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		subject, serial := ex.conn.peerLogFields(r.TLS.PeerCertificates[0])
		attrs = append(attrs, slog.String("peer_subject", subject), slog.String("peer_serial", serial))
	}
	p.connLog.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

// protocolName prints the protocol as Envoy's %PROTOCOL% does.
func protocolName(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "HTTP/2"
	}
	return r.Proto
}

// countingBody counts the request body bytes read, for bytes_received. The
// upstream transport may still be reading when the request is logged.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
