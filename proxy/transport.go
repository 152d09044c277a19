package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// upstreamTransportBuffer is net/http's default size of a transport
// connection's read and write buffers.
const upstreamTransportBuffer = 4 << 10

// envoyMaxResponseHeaders is Envoy's default max_response_headers_kb.
const envoyMaxResponseHeaders = 60 << 10

// upstreamMaxIdlePerHost bounds the idle connections kept per upstream
// host: above the concurrency a host usually sees, so that keep-alive
// traffic does not dial (net/http's default is 2).
const upstreamMaxIdlePerHost = 64

// upstreamIdleTimeout is Envoy's upstream default idle timeout.
const upstreamIdleTimeout = time.Hour

// upstreamTransport is a cluster's HTTP/1.1 transport. A cluster or secret
// change replaces it; the replaced one is retired: its idle connections
// close at once and those still carrying a request close when the request
// ends, so that an old client certificate does not stay in use on pooled
// connections until the idle timeout.
type upstreamTransport struct {
	*http.Transport
	// direct carries GET and HEAD requests without a body to a plaintext
	// upstream (directtransport.go); nil for TLS upstreams.
	direct   *directTransport
	inflight atomic.Int64
	retired  atomic.Bool
}

// newTransport builds the HTTP/1.1 transport of a cluster: Envoy speaks
// HTTP/1.1 upstream unless told otherwise, and so does the proxy. Each
// connection's read and write buffers stay within the cluster's
// per_connection_buffer_limit_bytes (net/http's 4 KiB, or the limit if
// smaller); response headers are bounded as Envoy bounds them by default.
func newTransport(s *clusterSpec, up *upstreamTLS) *upstreamTransport {
	d := &net.Dialer{Timeout: s.connectTimeout, KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
		if s.v4Preferred {
			c, err := d.DialContext(ctx, "tcp4", addr)
			if err == nil {
				return c, nil
			}
			if c6, err6 := d.DialContext(ctx, "tcp6", addr); err6 == nil {
				return c6, nil
			}
			return nil, err
		}
		return d.DialContext(ctx, s.network, addr)
	}
	buf := upstreamTransportBuffer
	if s.bufferLimit > 0 {
		buf = min(buf, s.bufferLimit)
	}
	t := &http.Transport{
		DialContext:            dial,
		MaxIdleConnsPerHost:    upstreamMaxIdlePerHost,
		IdleConnTimeout:        upstreamIdleTimeout,
		ResponseHeaderTimeout:  0, // the route timeout bounds the request instead
		ForceAttemptHTTP2:      false,
		ReadBufferSize:         buf,
		WriteBufferSize:        buf,
		MaxResponseHeaderBytes: envoyMaxResponseHeaders,
		// Envoy forwards Accept-Encoding as the client sent it; net/http
		// would add gzip and decompress the response itself (an extra
		// buffer per request, and a body the client did not ask for).
		DisableCompression: true,
	}
	if up != nil {
		t.TLSClientConfig = up.config
		t.TLSHandshakeTimeout = s.connectTimeout
		return &upstreamTransport{Transport: t}
	}
	ut := &upstreamTransport{Transport: t}
	ut.direct = &directTransport{dial: dial, bufSize: buf, maxHeader: envoyMaxResponseHeaders,
		maxIdle: upstreamMaxIdlePerHost, idleTimeout: upstreamIdleTimeout, retired: &ut.retired}
	return ut
}

// RoundTrip counts the request in flight until its response body is
// closed (or it fails).
func (t *upstreamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.inflight.Add(1)
	var resp *http.Response
	var err error
	if t.direct != nil && directEligible(r) {
		resp, err = t.direct.RoundTrip(r)
	} else {
		resp, err = t.Transport.RoundTrip(r)
	}
	if err != nil {
		t.done()
		return nil, err
	}
	db := &doneBody{ReadCloser: resp.Body, done: t.done}
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok {
		// A 101 upgrade's body is the connection: keep it writable.
		resp.Body = &doneRWBody{doneBody: db, w: rw}
	} else {
		resp.Body = db
	}
	return resp, nil
}

// CloseIdleConnections closes the idle connections of both paths.
func (t *upstreamTransport) CloseIdleConnections() {
	t.Transport.CloseIdleConnections()
	if t.direct != nil {
		t.direct.CloseIdleConnections()
	}
}

func (t *upstreamTransport) done() {
	if t.inflight.Add(-1) == 0 && t.retired.Load() {
		t.CloseIdleConnections()
	}
}

// retire closes the idle connections now. net/http's CloseIdleConnections
// also makes connections that become idle later close instead of pooling,
// until the transport dials again; a request that still reaches this
// transport after retirement may dial, so its end closes idle connections
// once more.
func (t *upstreamTransport) retire() {
	t.retired.Store(true)
	t.CloseIdleConnections()
}

// doneBody calls done once, when the response body is closed.
type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

type doneRWBody struct {
	*doneBody
	w io.Writer
}

func (b *doneRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }
