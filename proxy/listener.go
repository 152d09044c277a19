package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// handshakeTimeout bounds a TLS handshake, so idle half-open clients cannot
// hold goroutines.
const handshakeTimeout = 10 * time.Second

// lingerTimeout bounds how long a refused connection is drained before it
// is closed (see lingerClose).
const lingerTimeout = 250 * time.Millisecond

// lingerClose closes a connection whose handshake failed the way nginx's
// lingering close does: half-close, then read and discard what the client
// already sent for a moment. A TLS 1.3 client sends its certificate and often
// its first request before it reads our alert; closing with that data unread
// makes the kernel send a reset, which can destroy the alert in flight, and
// the client then reports a broken connection instead of "bad certificate".
func lingerClose(tc *trackedConn) {
	if w, ok := tc.Conn.(interface{ CloseWrite() error }); ok {
		_ = w.CloseWrite()
	}
	_ = tc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.CopyN(io.Discard, tc, 64<<10)
	_ = tc.Close()
}

// listenerRuntime is one bound listener: its socket, accept loop, open
// connections and current HTTP server generation.
type listenerRuntime struct {
	p     *Proxy
	name  string
	addr  string // configured address; ln.Addr() is the bound one
	ln    net.Listener
	tlsc  *tls.Config
	done  chan struct{}
	gen   atomic.Pointer[serverGen]
	wg    sync.WaitGroup // accept loop and handshakes
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	// settings is what the current generation was built with.
	settings serverSettings
}

// serverGen is one http.Server fed by a channel listener. HTTP settings
// that net/http fixes per server (timeouts, header limit) change by starting
// a new generation on the same socket and shutting the old one down
// gracefully: no connection is refused meanwhile.
type serverGen struct {
	srv *http.Server
	ln  *chanListener
}

func (p *Proxy) startListener(ls *listenerState) (*listenerRuntime, error) {
	ln, err := net.Listen("tcp", ls.address)
	if err != nil {
		return nil, err
	}
	lr := &listenerRuntime{p: p, name: ls.name, addr: ls.address, ln: ln, done: make(chan struct{}), conns: map[*trackedConn]struct{}{}}
	lr.tlsc = lr.handshakeConfig()
	lr.newGen(ls.server)
	lr.wg.Add(1)
	go lr.acceptLoop()
	p.log.Info("listener started", "listener", ls.name, "address", ln.Addr().String())
	return lr, nil
}

func (lr *listenerRuntime) newGen(s serverSettings) {
	cl := &chanListener{ch: make(chan net.Conn), closed: make(chan struct{}), addr: lr.ln.Addr()}
	srv := &http.Server{
		Handler:           lr,
		ReadHeaderTimeout: s.readHeaderTimeout,
		IdleTimeout:       s.idleTimeout,
		MaxHeaderBytes:    s.maxHeaderBytes,
		HTTP2:             s.http2Config(),
		ErrorLog:          log.New(slogWriter{lr.p.log.With("listener", lr.name)}, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if t, ok := c.(*tls.Conn); ok {
				if tc, ok := t.NetConn().(*trackedConn); ok {
					return context.WithValue(ctx, connKey{}, tc)
				}
			}
			return ctx
		},
	}
	g := &serverGen{srv: srv, ln: cl}
	old := lr.gen.Swap(g)
	lr.settings = s
	go func() { _ = srv.Serve(cl) }()
	if old != nil {
		lr.p.drain(old, lr.name)
	}
}

func (lr *listenerRuntime) acceptLoop() {
	defer lr.wg.Done()
	var delay time.Duration
	for {
		raw, err := lr.ln.Accept()
		if err != nil {
			select {
			case <-lr.done:
				return
			default:
			}
			// Temporary errors (EMFILE...): back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			lr.p.log.Warn("accept failed", "listener", lr.name, "error", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-lr.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		delay = 0
		tc := &trackedConn{Conn: raw, lr: lr, accepted: time.Now()}
		if !lr.track(tc) {
			_ = raw.Close()
			return
		}
		lr.wg.Add(1)
		go lr.handshake(tc)
	}
}

// handshake runs the TLS handshake outside net/http, so that every outcome
// (success or failure, with its reason) is logged and counted once; net/http
// then finds the handshake done.
func (lr *listenerRuntime) handshake(tc *trackedConn) {
	defer lr.wg.Done()
	conn := tls.Server(tc, lr.tlsc)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	start := time.Now()
	err := conn.HandshakeContext(ctx)
	tc.keys.forget()
	cancel()
	cs := conn.ConnectionState()
	lr.p.logHandshake(lr.name, tc, &cs, err, time.Since(start))
	if err != nil {
		lingerClose(tc)
		return
	}
	if !lr.admit(tc, cs) {
		_ = conn.Close()
		return
	}
	for {
		g := lr.gen.Load()
		select {
		case g.ln.ch <- conn:
			return
		case <-g.ln.closed:
			if lr.gen.Load() == g {
				_ = conn.Close() // the listener is stopping
				return
			}
		case <-lr.done:
			_ = conn.Close()
			return
		}
	}
}

// admit records the peer chain and closes the race with a trust update that
// landed during the handshake: if the chain's verifier changed meanwhile,
// the connection is rechecked against the new one now.
func (lr *listenerRuntime) admit(tc *trackedConn, cs tls.ConnectionState) bool {
	tc.mu.Lock()
	tc.peer = cs.PeerCertificates
	chain, used := tc.chain, tc.verifier
	tc.mu.Unlock()
	if len(cs.PeerCertificates) == 0 || chain == nil {
		return true
	}
	ls := lr.p.state.Load().listeners[lr.name]
	if ls == nil {
		return true
	}
	now := ls.chainByName(chain.name)
	if now == nil || now.verifier == used || now.verifier == nil {
		return true
	}
	if f := now.verifier.Recheck(cs.PeerCertificates); f != nil {
		lr.p.connLog.Info("connection closed: client certificate no longer valid",
			"event", "recheck", "listener", lr.name, "client", tc.RemoteAddr().String(),
			"peer_subject", cs.PeerCertificates[0].Subject.String(), "peer_serial", serialHex(cs.PeerCertificates[0]),
			"result", "fail", keyTransportFailure, string(f.Reason), "error", f.Error())
		return false
	}
	tc.mu.Lock()
	tc.verifier = now.verifier
	tc.mu.Unlock()
	return true
}

func (lr *listenerRuntime) track(c *trackedConn) bool {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	select {
	case <-lr.done:
		return false
	default:
	}
	lr.conns[c] = struct{}{}
	return true
}

func (lr *listenerRuntime) untrack(c *trackedConn) {
	lr.mu.Lock()
	delete(lr.conns, c)
	lr.mu.Unlock()
}

func (lr *listenerRuntime) snapshot() []*trackedConn {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	out := make([]*trackedConn, 0, len(lr.conns))
	for c := range lr.conns {
		out = append(out, c)
	}
	return out
}

func (lr *listenerRuntime) openConns() int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return len(lr.conns)
}

// stop closes the socket at once and drains the open connections in the
// background: in-flight requests finish, HTTP/2 clients get GOAWAY, idle
// keep-alive connections close. After the drain timeout the rest are closed.
func (lr *listenerRuntime) stop() {
	lr.mu.Lock()
	close(lr.done)
	lr.mu.Unlock()
	_ = lr.ln.Close()
	if g := lr.gen.Load(); g != nil {
		lr.p.drain(g, lr.name)
	}
	lr.p.bg.Add(1)
	go func() {
		defer lr.p.bg.Done()
		lr.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), lr.p.opts.DrainTimeout)
		defer cancel()
		// Connections that never reached net/http (mid-handshake) are closed
		// by handshake(); what remains belongs to drained servers.
		for lr.openConns() > 0 {
			select {
			case <-ctx.Done():
				for _, c := range lr.snapshot() {
					_ = c.Close()
				}
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	lr.p.log.Info("listener stopped, draining", "listener", lr.name, "address", lr.ln.Addr().String())
}

// drain shuts a server generation down gracefully in the background.
func (p *Proxy) drain(g *serverGen, listener string) {
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), p.opts.DrainTimeout)
		defer cancel()
		if err := g.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			p.log.Warn("drain failed", "listener", listener, "error", err)
		}
		if ctx.Err() != nil {
			_ = g.srv.Close()
		}
	}()
}

// chanListener hands handshaken connections to an http.Server.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

type connKey struct{}

func connFrom(ctx context.Context) *trackedConn {
	tc, _ := ctx.Value(connKey{}).(*trackedConn)
	return tc
}

// slogWriter adapts net/http's error log to slog at debug level: those lines
// (client resets, bad requests) are noise for an operator.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	w.l.Debug("http server", "detail", string(b))
	return len(b), nil
}
