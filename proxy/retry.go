package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
)

// Envoy's retry defaults, as its router applies them.
const (
	// envoyRetryBaseInterval is retry_back_off.base_interval's default;
	// the maximum is ten times it. Retry k waits a random time below
	// min(base*2^k, max) (JitteredExponentialBackOffStrategy).
	envoyRetryBaseInterval = 25 * time.Millisecond
	envoyRetryMaxInterval  = 10 * envoyRetryBaseInterval
	// envoyMaxRetries is the default circuit breaker threshold max_retries:
	// at most this many retries of one cluster are outstanding at once.
	envoyMaxRetries = 3
	// previousHostsPredicate is the one retry host predicate implemented.
	previousHostsPredicate = "envoy.retry_host_predicates.previous_hosts"
)

// retryPolicy is a route's retry_policy.
type retryPolicy struct {
	connectFailure bool // connect-failure
	reset          bool // reset: no response at all (connect failures included)
	status5xx      bool // 5xx: a 5xx response, or none at all
	numRetries     int
	// previousHosts is the previous_hosts host predicate: a retry avoids
	// the hosts already tried, picking again up to hostSelectionAttempts
	// times before taking the last pick.
	previousHosts         bool
	hostSelectionAttempts int
}

func buildRetryPolicy(rp *routev3.RetryPolicy) (*retryPolicy, error) {
	p := &retryPolicy{numRetries: 1, hostSelectionAttempts: 1}
	for _, on := range strings.Split(rp.GetRetryOn(), ",") {
		switch strings.TrimSpace(on) {
		case "connect-failure":
			p.connectFailure = true
		case "reset":
			p.reset = true
		case "5xx":
			p.status5xx = true
		case "":
		default:
			return nil, fmt.Errorf("retry_on %q is not implemented by certplane proxy (connect-failure, reset, 5xx are)", on)
		}
	}
	if n := rp.GetNumRetries(); n != nil {
		p.numRetries = int(n.GetValue())
	}
	for i, hp := range rp.GetRetryHostPredicate() {
		if hp.GetName() != previousHostsPredicate {
			return nil, fmt.Errorf("retry_host_predicate[%d]: %q is not implemented by certplane proxy", i, hp.GetName())
		}
		if tc := hp.GetTypedConfig(); tc != nil && !tc.MessageIs(&previoushostsv3.PreviousHostsPredicate{}) {
			return nil, fmt.Errorf("retry_host_predicate[%d]: typed_config %s is not a PreviousHostsPredicate", i, tc.GetTypeUrl())
		}
		p.previousHosts = true
	}
	if a := rp.GetHostSelectionRetryMaxAttempts(); a != 0 {
		if a < 0 {
			return nil, fmt.Errorf("host_selection_retry_max_attempts %d is negative", a)
		}
		p.hostSelectionAttempts = int(min(a, 100))
	}
	return p, nil
}

// attemptFailure is how one upstream attempt failed, in Envoy's terms.
type attemptFailure int

const (
	attemptOK            attemptFailure = iota
	attemptConnectFailed                // no connection: dial or upstream TLS handshake failed
	attemptReset                        // connected, but no response headers
)

// retriable reports whether an attempt that ended so is retried under p
// (Envoy's RetryStateImpl wouldRetryFromReset and wouldRetryFromHeaders).
// An upstream that set x-envoy-overloaded is not retried.
func (p *retryPolicy) retriable(f attemptFailure, resp *http.Response) bool {
	switch f {
	case attemptConnectFailed:
		return p.connectFailure || p.reset || p.status5xx
	case attemptReset:
		return p.reset || p.status5xx
	}
	return p.status5xx && resp != nil && resp.StatusCode >= 500 && resp.Header.Get("X-Envoy-Overloaded") == ""
}

// upstreamLimits are what the upstream call needs from the connection
// manager and listener besides the route.
type upstreamLimits struct {
	// idle is the stream idle timeout in force (the route's idle_timeout
	// or the connection manager's stream_idle_timeout); 0: none.
	idle time.Duration
	// bufferLimit is the listener's per_connection_buffer_limit_bytes:
	// Envoy buffers a request body for a retry up to it, and a body that
	// outgrows it is not retried (the router's retry_shadow_buffer_limit).
	bufferLimit int
}

// roundTrip forwards one request upstream as Envoy's router does: one
// attempt on the picked host, then, under the route's retry policy,
// retries on other hosts with jittered exponential back-off while
// retries remain, the cluster's retry circuit breaker allows, the body
// seen so far fits in the buffer limit and the route timeout has not
// passed. Every failed attempt that is retried counts toward outlier
// detection here; the last attempt is counted by the ReverseProxy hooks.
// While no response has arrived the stream idle timer runs: request body
// reads reset it, and when it fires the wait ends with a *streamIdleError.
func (p *Proxy) roundTrip(ex *exchange, r *http.Request) (*http.Response, error) {
	rp := ex.route.retry
	if rp != nil && rp.numRetries == 0 {
		rp = nil
	}
	idleFor := ex.limits.idle
	if t := ex.route.timeout; t > 0 && idleFor >= t {
		// Both start now and the idle timer can only be reset later: the
		// route timeout ends the wait first (the defaults, 300s and 60s).
		idleFor = 0
	}
	if rp == nil && idleFor == 0 {
		resp, _, err := p.attempt(ex, r, false)
		return resp, err
	}
	// An attempt's context is cancellable only when the idle timer may
	// cancel it.
	newCtx := func() (context.Context, context.CancelFunc) {
		if idleFor == 0 {
			return r.Context(), func() {}
		}
		return context.WithCancel(r.Context())
	}
	ctx, cancel := newCtx()
	idle := newIdleTimer(idleFor, cancel)
	var body *replayBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &replayBody{src: r.Body, idle: idle}
		if rp != nil && (rp.reset || rp.status5xx) {
			// A connect failure happens before any body byte is read;
			// only reset and 5xx need the body again.
			body.limit = ex.limits.bufferLimit
		}
	}
	idleErr := func() error { return &streamIdleError{requestComplete: body == nil || body.eof.Load()} }
	var tried []*host // the hosts tried, once a retry is considered
	holding := false  // a retry of the cluster's circuit breaker is held
	release := func() {
		if holding {
			ex.cluster.rt.retries.Add(-1)
			holding = false
		}
	}
	defer release()
	for n := 0; ; n++ {
		out := r
		if n > 0 || idleFor > 0 {
			// A retry's request is a new one: the transport may still
			// hold the last one.
			out = r.WithContext(ctx)
			u := *r.URL
			u.Host = ex.host.addr
			out.URL = &u
		}
		var view *attemptBody
		if body != nil {
			view = body.view()
			out.Body = view
		}
		resp, failure, err := p.attempt(ex, out, rp != nil)
		if idle.halt() {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, idleErr()
		}
		release()
		if resp != nil && idleFor > 0 {
			// The response is the client's now: only the route timeout
			// (the parent context) may end it.
			resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		} else {
			defer cancel()
		}
		if rp == nil || n >= rp.numRetries || !rp.retriable(failure, resp) || r.Context().Err() != nil {
			return resp, err
		}
		if view != nil {
			// The transport may read and close the body after RoundTrip
			// returns; what it read decides whether a retry can replay it.
			select {
			case <-view.closed:
			case <-r.Context().Done():
				return resp, err
			}
			if !body.replayable() {
				return resp, err
			}
		}
		if ex.cluster.rt.retries.Add(1) > envoyMaxRetries {
			ex.cluster.rt.retries.Add(-1)
			return resp, err
		}
		holding = true
		if tried == nil {
			tried = append(make([]*host, 0, rp.numRetries+1), ex.host)
		}
		next := ex.cluster.pickRetry(time.Now(), tried, rp)
		if next == nil {
			return resp, err
		}
		nctx, ncancel := newCtx()
		idle.arm(ncancel)
		slept := sleepCtx(nctx, retryBackOff(n))
		if !slept && !idle.halt() {
			// The route timeout passed or the client left during the
			// back-off: this attempt's outcome is the answer.
			ncancel()
			return resp, err
		}
		// This attempt is final now: count it and drop its response.
		if resp != nil {
			p.outlierReport(ex, outcomeOf(resp.StatusCode))
			resp.Body.Close()
		} else {
			p.outlierReport(ex, outcomeGateway)
		}
		if !slept {
			ncancel()
			return nil, idleErr()
		}
		p.log.Debug("retrying upstream request", "cluster", ex.cluster.name, "host", ex.host.addr, "next", next.addr, "error", err)
		ctx, cancel = nctx, ncancel
		ex.host = next
		tried = append(tried, next)
	}
}

// streamIdleError ends an upstream wait that saw no activity for the
// stream idle timeout. Envoy then answers 408 while the request body is
// still arriving and 504 once it is complete
// (Http::Utility::maybeRequestTimeoutCode).
type streamIdleError struct{ requestComplete bool }

func (e *streamIdleError) Error() string { return "stream idle timeout" }

func (e *streamIdleError) status() int {
	if e.requestComplete {
		return http.StatusGatewayTimeout
	}
	return http.StatusRequestTimeout
}

// cancelBody releases an attempt's context when its response body closes.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// Write keeps a 101 upgrade's body writable (see upstreamTransport).
func (b *cancelBody) Write(p []byte) (int, error) { return writeBody(b.ReadCloser, p) }

// attempt is one upstream request to r.URL.Host. With classify it tells
// a failed connection (no connection was had: dial, connect timeout,
// upstream TLS handshake) from a reset (a connection, but no response
// headers). Under least_request it counts the request as active on the
// host until its response body is closed.
func (p *Proxy) attempt(ex *exchange, r *http.Request, classify bool) (*http.Response, attemptFailure, error) {
	var gotConn atomic.Bool
	if classify {
		trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }}
		r = r.WithContext(httptrace.WithClientTrace(r.Context(), trace))
	}
	h, count := ex.host, ex.cluster.lb == lbLeastRequest
	if count {
		h.active.Add(1)
	}
	resp, err := ex.cluster.transport.RoundTrip(r)
	if err != nil {
		if count {
			h.active.Add(-1)
		}
		if gotConn.Load() {
			return nil, attemptReset, err
		}
		return nil, attemptConnectFailed, err
	}
	if count {
		resp.Body = &activeBody{ReadCloser: resp.Body, h: h}
	}
	return resp, attemptOK, nil
}

// activeBody ends a request's count on its host when the response body is
// closed.
type activeBody struct {
	io.ReadCloser
	h    *host
	once sync.Once
}

func (b *activeBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.h.active.Add(-1) })
	return err
}

// Write keeps a 101 upgrade's body writable (see upstreamTransport).
func (b *activeBody) Write(p []byte) (int, error) { return writeBody(b.ReadCloser, p) }

func writeBody(r io.Reader, p []byte) (int, error) {
	if w, ok := r.(io.Writer); ok {
		return w.Write(p)
	}
	return 0, errors.New("response body is not writable")
}

// pickRetry picks the host of a retry. With previous_hosts the load
// balancer picks again while it picks a host already tried, up to
// host_selection_retry_max_attempts times, then takes its last pick.
func (c *clusterState) pickRetry(now time.Time, tried []*host, rp *retryPolicy) *host {
	h := c.pick(now)
	if !rp.previousHosts {
		return h
	}
	for i := 0; i < rp.hostSelectionAttempts && h != nil && slices.Contains(tried, h); i++ {
		h = c.pick(now)
	}
	return h
}

// retryBackOff is the wait before retry n+1: Envoy's fully jittered
// exponential back-off, a random time below min(base*2^n, max).
func retryBackOff(n int) time.Duration {
	ceiling := envoyRetryBaseInterval << min(n, 8)
	if ceiling > envoyRetryMaxInterval {
		ceiling = envoyRetryMaxInterval
	}
	return time.Duration(rand.Int64N(int64(ceiling)))
}

// sleepCtx waits d unless ctx ends first; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// replayBody keeps the request body read so far, up to limit bytes, so a
// retry can send it again; one view reads it per attempt, and a view reads
// the source on where the buffer ends. Once the body outgrows the limit
// the buffer is dropped and no retry follows, as in Envoy. Views read one
// after the other (roundTrip waits for a view's Close), never at once.
type replayBody struct {
	src   io.ReadCloser
	limit int
	idle  *idleTimer
	buf   []byte
	over  bool
	eof   atomic.Bool
	err   error
}

func (b *replayBody) replayable() bool { return !b.over }

func (b *replayBody) view() *attemptBody {
	return &attemptBody{b: b, closed: make(chan struct{})}
}

// attemptBody is one attempt's read of a replayBody.
type attemptBody struct {
	b      *replayBody
	pos    int
	once   sync.Once
	closed chan struct{}
}

func (v *attemptBody) Read(p []byte) (int, error) {
	b := v.b
	if v.pos < len(b.buf) {
		n := copy(p, b.buf[v.pos:])
		v.pos += n
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.eof.Load() {
		return 0, io.EOF
	}
	n, err := b.src.Read(p)
	if n > 0 {
		b.idle.touch()
		if !b.over && len(b.buf)+n <= b.limit {
			b.buf = append(b.buf, p[:n]...)
			v.pos = len(b.buf)
		} else {
			b.over, b.buf = true, nil
		}
	}
	switch {
	case err == io.EOF:
		b.eof.Store(true)
	case err != nil:
		b.err = err
	}
	return n, err
}

// Close ends this attempt's read; the client's body stays open for a
// retry (the server closes it when the request ends).
func (v *attemptBody) Close() error {
	v.once.Do(func() { close(v.closed) })
	return nil
}

// idleTimer is Envoy's stream idle timer while the proxy waits for an
// upstream response: activity (a request body read) resets it; when it
// fires it cancels the wait. halt stops it and tells whether it fired, so
// a response that won the race is never cancelled afterwards.
type idleTimer struct {
	d      time.Duration
	t      *time.Timer
	mu     sync.Mutex
	armed  bool
	fire   bool
	cancel context.CancelFunc
}

// newIdleTimer starts a timer of d; with d 0 it returns nil, a timer that
// never fires.
func newIdleTimer(d time.Duration, cancel context.CancelFunc) *idleTimer {
	if d <= 0 {
		return nil
	}
	it := &idleTimer{d: d, cancel: cancel, armed: true}
	it.t = time.AfterFunc(d, it.expire)
	return it
}

func (it *idleTimer) expire() {
	it.mu.Lock()
	if !it.armed {
		it.mu.Unlock()
		return
	}
	it.fire = true
	cancel := it.cancel
	it.mu.Unlock()
	cancel()
}

// touch restarts the timer on stream activity.
func (it *idleTimer) touch() {
	if it == nil {
		return
	}
	it.mu.Lock()
	if it.armed && !it.fire {
		it.t.Reset(it.d)
	}
	it.mu.Unlock()
}

// halt stops the timer and reports whether it had fired.
func (it *idleTimer) halt() bool {
	if it == nil {
		return false
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	it.armed = false
	it.t.Stop()
	return it.fire
}

// arm restarts a halted timer for the next attempt, cancelling with cancel.
func (it *idleTimer) arm(cancel context.CancelFunc) {
	if it == nil {
		return
	}
	it.mu.Lock()
	it.armed, it.cancel = true, cancel
	it.t.Reset(it.d)
	it.mu.Unlock()
}

// envoyBufferLimit is Envoy's per_connection_buffer_limit_bytes default.
const envoyBufferLimit = 1 << 20

// retryBufferLimit is how much request body a retry may replay on ls.
func (ls *listenerState) retryBufferLimit() int {
	if ls == nil {
		return envoyBufferLimit
	}
	return ls.bufferLimit
}

// streamIdleReply answers a request whose stream idle timer fired while
// waiting for the upstream, as Envoy's connection manager does: 408
// "stream timeout" while the body was still arriving (the connection then
// closes), 504 once it was complete. The upstream is not at fault.
func (p *Proxy) streamIdleReply(w http.ResponseWriter, err error) {
	var se *streamIdleError
	errors.As(err, &se)
	code := se.status()
	if code == http.StatusRequestTimeout {
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(code)
	_, _ = w.Write([]byte("stream timeout"))
}
