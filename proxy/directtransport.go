package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// directTransport forwards the common request, a GET or HEAD without a body
// and without an upgrade, to a plaintext upstream on the caller's
// goroutine. net/http's Transport hands every request to two goroutines of
// each pooled connection (a write loop and a read loop) and back; on
// keep-alive traffic those hand-offs were a large share of the proxy's CPU
// per request (issue 14). The wire format stays net/http's own: the request
// is written by Request.Write, the serializer the Transport uses, and the
// response is read by http.ReadResponse, the Transport's parser, with the
// Transport's checks around them (header names and values validated before
// anything is written, a bound on the response headers, 1xx responses
// handed to the httptrace hook ReverseProxy installs). Every other request
// (a body, an upgrade, TLS upstream) goes through net/http's Transport.
type directTransport struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	bufSize     int
	maxHeader   int64
	maxIdle     int // per host
	idleTimeout time.Duration
	retired     *atomic.Bool // the owning upstreamTransport's

	mu   sync.Mutex
	idle map[string][]*directConn
}

// directConn is one pooled upstream connection.
type directConn struct {
	conn      net.Conn
	lim       *limitedConn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// limitedConn bounds what the response header parse may read, as the
// Transport's persistConn.readLimit does; the body is read unbounded.
type limitedConn struct {
	net.Conn
	limit int64
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.limit <= 0 {
		return 0, errHeaderLimit
	}
	if int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.Conn.Read(p)
	c.limit -= int64(n)
	return n, err
}

var errHeaderLimit = errors.New("upstream response headers over the limit")

const noLimit = 1<<63 - 1

// directEligible reports whether r takes the direct path: GET or HEAD, no
// body, no Upgrade (a 101 turns the connection into a stream, which the
// Transport knows how to hand over), plaintext.
func directEligible(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.Body == nil || r.Body == http.NoBody) && r.ContentLength == 0 &&
		r.URL.Scheme == "http" && len(r.Header["Upgrade"]) == 0 && len(r.Trailer) == 0
}

// RoundTrip sends r on a pooled connection, or a new one. A pooled
// connection the upstream closed while it was idle fails before any
// response byte: the request (idempotent: GET or HEAD) is then sent again on
// a new connection, as net/http's Transport does.
func (t *directTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := validateOutgoing(r); err != nil {
		return nil, err
	}
	key := r.URL.Host
	for {
		dc, reused, err := t.get(r.Context(), key)
		if err != nil {
			return nil, err
		}
		// The hook net/http's Transport calls: retry.go tells a failed
		// connection from a reset by it.
		if trace := httptrace.ContextClientTrace(r.Context()); trace != nil && trace.GotConn != nil {
			info := httptrace.GotConnInfo{Conn: dc.conn, Reused: reused, WasIdle: reused}
			if reused {
				info.IdleTime = time.Since(dc.idleSince)
			}
			trace.GotConn(info)
		}
		resp, retry, err := t.exchange(r, dc, key)
		if err == nil {
			return resp, nil
		}
		_ = dc.conn.Close()
		if !reused || !retry || r.Context().Err() != nil {
			return nil, err
		}
		// The upstream probably closed its idle connections (a restart):
		// the next attempt dials.
		t.closeIdle(key)
	}
}

// validateOutgoing applies the Transport's checks before anything is
// written: header field names and values (no CR, LF or NUL can reach the
// upstream from a header the proxy adds), the method and the host.
func validateOutgoing(r *http.Request) error {
	for k, vv := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("net/http: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("net/http: invalid header field value for %q", k)
			}
		}
	}
	if r.URL.Host == "" {
		return errors.New("http: no Host in request URL")
	}
	return nil
}

// exchange writes r on dc and reads the response head. retry reports an
// error before any byte of a response arrived.
func (t *directTransport) exchange(r *http.Request, dc *directConn, key string) (_ *http.Response, retry bool, _ error) {
	ctx := r.Context()
	// A cancelled request (client gone, route timeout) unblocks the reads
	// and writes at once; the connection is then not reused.
	stop := context.AfterFunc(ctx, func() { _ = dc.conn.SetDeadline(aLongTimeAgo) })
	fail := func(retry bool, err error) (*http.Response, bool, error) {
		stop()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, false, ctxErr
		}
		return nil, retry, err
	}
	if err := r.Write(dc.bw); err != nil {
		return fail(false, err)
	}
	if err := dc.bw.Flush(); err != nil {
		return fail(true, err)
	}
	trace := httptrace.ContextClientTrace(ctx)
	dc.lim.limit = t.maxHeader
	if _, err := dc.br.Peek(1); err != nil {
		return fail(retryable(err), err)
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(dc.br, r)
		if err != nil {
			if dc.lim.limit <= 0 {
				err = fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", t.maxHeader)
			}
			return fail(false, err)
		}
		code := resp.StatusCode
		if code < 100 || code > 199 {
			break
		}
		if code == http.StatusSwitchingProtocols {
			// Only an Upgrade request (never direct) may be switched.
			return fail(false, errors.New("net/http: unexpected 101 response to a request without Upgrade"))
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(false, err)
			}
			dc.lim.limit = t.maxHeader // the 1xx was delivered: a fresh bound
		}
	}
	dc.lim.limit = noLimit
	keep := !resp.Close && !r.Close
	if resp.Body == http.NoBody || r.Method == http.MethodHead {
		t.release(dc, key, keep && stop())
		return resp, false, nil
	}
	resp.Body = &directBody{rc: resp.Body, t: t, dc: dc, key: key, keep: keep, stop: stop}
	return resp, false, nil
}

// retryable is an error reading the first byte of a response on a pooled
// connection that the upstream had closed: EOF or a reset.
func retryable(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// aLongTimeAgo is a deadline that makes every blocked read and write on a
// connection return at once.
var aLongTimeAgo = time.Unix(1, 0)

// directBody is a response body; at its end the connection goes back to
// the pool. Closed before its end, the connection is closed (what remains
// of the body is not drained, as the Transport does not drain it either).
type directBody struct {
	rc   io.ReadCloser
	t    *directTransport
	dc   *directConn
	key  string
	keep bool
	stop func() bool
	eof  bool
	done bool
}

func (b *directBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, errors.New("http: read on closed response body")
	}
	n, err := b.rc.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
	}
	return n, err
}

func (b *directBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	err := b.rc.Close()
	stopped := b.stop()
	if b.eof && b.keep && stopped && err == nil {
		b.t.release(b.dc, b.key, true)
		return nil
	}
	_ = b.dc.conn.Close()
	return err
}

// get pops the most recently used idle connection to key, or dials one.
func (t *directTransport) get(ctx context.Context, key string) (*directConn, bool, error) {
	now := time.Now()
	t.mu.Lock()
	for l := t.idle[key]; len(l) > 0; l = t.idle[key] {
		dc := l[len(l)-1]
		l[len(l)-1] = nil
		t.idle[key] = l[:len(l)-1]
		if now.Sub(dc.idleSince) >= t.idleTimeout {
			_ = dc.conn.Close()
			continue
		}
		t.mu.Unlock()
		if idleConnUsable(dc.conn) {
			return dc, true, nil
		}
		_ = dc.conn.Close()
		t.mu.Lock()
	}
	t.mu.Unlock()
	c, err := t.dial(ctx, "tcp", key)
	if err != nil {
		return nil, false, err
	}
	lim := &limitedConn{Conn: c, limit: noLimit}
	return &directConn{conn: c, lim: lim, br: bufio.NewReaderSize(lim, t.bufSize), bw: bufio.NewWriterSize(c, t.bufSize)}, false, nil
}

// release pools dc, or closes it when it cannot carry another request (the
// exchange said so, bytes are left unread, the pool is full or the
// transport retired).
func (t *directTransport) release(dc *directConn, key string, keep bool) {
	if keep && dc.br.Buffered() == 0 && !t.retired.Load() {
		dc.idleSince = time.Now()
		t.mu.Lock()
		if t.idle == nil {
			t.idle = map[string][]*directConn{}
		}
		if l := t.idle[key]; len(l) < t.maxIdle {
			t.idle[key] = append(l, dc)
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
	_ = dc.conn.Close()
}

func (t *directTransport) closeIdle(key string) {
	t.mu.Lock()
	l := t.idle[key]
	delete(t.idle, key)
	t.mu.Unlock()
	for _, dc := range l {
		_ = dc.conn.Close()
	}
}

// CloseIdleConnections closes every pooled connection.
func (t *directTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, l := range idle {
		for _, dc := range l {
			_ = dc.conn.Close()
		}
	}
}
