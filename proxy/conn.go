package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certplane/certplane/proxy/mtls"
)

// trackedConn is one accepted downstream connection. It remembers which
// filter chain and verifier admitted it and the peer's chain, so that a
// later trust or CRL change can recheck it and close it if it became
// invalid.
type trackedConn struct {
	net.Conn
	lr       *listenerRuntime
	accepted time.Time

	mu       sync.Mutex
	chain    *chainState
	verifier *mtls.Verifier
	failure  *mtls.Failure
	peer     []*x509.Certificate
	closed   bool
	// revoked is the reason the connection was closed by a recheck.
	revoked mtls.Reason

	closeOnce sync.Once

	// rx and tx count the bytes read and written on the socket, for the
	// connection log's bytes_received and bytes_sent.
	rx, tx atomic.Int64

	// peerValues caches per-request renderings of the peer chain.
	peerValues peerValues

	// keys holds the TLS 1.3 server write secret while the handshake runs,
	// and alerted is set once refuse wrote the precise refusal alert
	// (alert.go).
	keys    alertKeys
	alerted atomic.Bool
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.rx.Add(int64(n))
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	if c.alerted.Load() {
		// The refusal's alert is out; what Go's TLS stack writes after it
		// (its generic alert) is dropped.
		return len(b), nil
	}
	n, err := c.Conn.Write(b)
	c.tx.Add(int64(n))
	return n, err
}

func (c *trackedConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.lr.untrack(c)
		err = c.Conn.Close()
	})
	return err
}

// handshakeConfig is the listener's tls.Config: every handshake reads the
// current state, picks the filter chain by SNI, and gets that chain's
// config with a VerifyConnection bound to this connection, so that the
// failure reason reaches the connection log and the refusal carries its
// precise alert (alert.go). VerifyConnection also runs on resumed
// sessions, so a resumed session meets today's trust and CRLs. The clone
// gets the chain's own session ticket keys, so that no ticket resumes on
// another chain (tickets.go).
func (lr *listenerRuntime) handshakeConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			tc, _ := hello.Conn.(*trackedConn)
			ls := lr.p.state.Load().listeners[lr.name]
			if ls == nil || tc == nil {
				return nil, errNoListener
			}
			chain := ls.pick(hello.ServerName)
			if chain == nil {
				return nil, errNoFilterChain
			}
			tc.mu.Lock()
			tc.chain, tc.verifier = chain, chain.verifier
			tc.mu.Unlock()
			cfg := chain.tls.Clone()
			cfg.SetSessionTicketKeys(lr.p.tickets.keys(lr.name, chain.name, time.Now()))
			v := chain.verifier
			if cfg.ClientAuth != tls.NoClientCert {
				cfg.KeyLogWriter = &tc.keys
			}
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				if v == nil {
					return nil
				}
				f := v.Verify(cs)
				if f == nil && chain.ocsp != nil {
					f = lr.p.ocsp.check(lr.name, chain.ocsp, v, cs)
				}
				if f != nil {
					tc.mu.Lock()
					tc.failure = f
					tc.mu.Unlock()
					tc.refuse(&cs, f.AlertFor(cs.Version))
					return f
				}
				return nil
			}
			return cfg, nil
		},
	}
}

type handshakeError string

func (e handshakeError) Error() string { return string(e) }

const (
	errNoListener    = handshakeError("listener is gone")
	errNoFilterChain = handshakeError("no filter chain matches the server name (and no default_filter_chain)")
)

// recheck re-verifies the open connections of every listener whose
// verifier changed, and closes those whose client certificate is no longer
// valid (revoked, CA removed...). Connections that still verify are kept:
// a rotation never drops a valid connection.
func (p *Proxy) recheck(st *state) {
	for _, lr := range p.listeners {
		ls := st.listeners[lr.name]
		if ls == nil {
			continue
		}
		for _, c := range lr.snapshot() {
			c.mu.Lock()
			chain, old, peer, closed := c.chain, c.verifier, c.peer, c.closed
			c.mu.Unlock()
			if closed || chain == nil || len(peer) == 0 {
				continue
			}
			now := ls.chainByName(chain.name)
			if now == nil || now.verifier == old {
				continue
			}
			if now.verifier == nil {
				c.mu.Lock()
				c.verifier = nil
				c.mu.Unlock()
				continue
			}
			f := now.verifier.Recheck(peer)
			if f == nil {
				c.mu.Lock()
				c.verifier = now.verifier
				c.mu.Unlock()
				continue
			}
			c.mu.Lock()
			c.revoked = f.Reason
			c.mu.Unlock()
			p.metrics.closedByRecheck.WithLabelValues(lr.name, string(f.Reason)).Inc()
			p.connLog.Info("connection closed: client certificate no longer valid",
				"event", "recheck", "listener", lr.name, "client", c.RemoteAddr().String(),
				"peer_subject", peer[0].Subject.String(), "peer_serial", serialHex(peer[0]),
				"result", "fail", keyTransportFailure, string(f.Reason), "error", f.Error())
			_ = c.Close()
		}
	}
}
