package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/certplane/certplane/proxy/mtls"
)

// reasonOf classifies a failed handshake with the mtls failure enum.
// Failures that are not about the client certificate are protocol_error.
func reasonOf(tc *trackedConn, err error) mtls.Reason {
	tc.mu.Lock()
	f := tc.failure
	tc.mu.Unlock()
	if f != nil {
		return f.Reason
	}
	var mf *mtls.Failure
	if errors.As(err, &mf) {
		return mf.Reason
	}
	if strings.Contains(err.Error(), "client didn't provide a certificate") {
		return "no_certificate"
	}
	return "protocol_error"
}

// logHandshake writes one connection-log line per handshake and counts it.
// Repeated identical failures are rate-limited per (listener, reason, client
// IP), so a scanner cannot fill the disk; the next line carries the count of
// lines suppressed since.
func (p *Proxy) logHandshake(listener string, tc *trackedConn, cs *tls.ConnectionState, err error, dur time.Duration) {
	result, reason := "ok", ""
	if err != nil {
		result, reason = "fail", string(reasonOf(tc, err))
	}
	p.metrics.handshakes.WithLabelValues(listener, result, reason).Inc()
	client := tc.RemoteAddr().String()
	var suppressed int
	if err != nil {
		ip, _, _ := net.SplitHostPort(client)
		var log bool
		if log, suppressed = p.limiter.allow(listener, reason, ip, time.Now()); !log {
			return
		}
	}
	attrs := []slog.Attr{
		slog.String("event", "handshake"),
		slog.String("client", client),
		slog.String("listener", listener),
		slog.String("sni", cs.ServerName),
		slog.String("tls_version", versionName(cs.Version)),
		slog.String("cipher", cipherName(cs.CipherSuite)),
		slog.String("alpn", cs.NegotiatedProtocol),
		slog.Float64("handshake_ms", float64(dur.Microseconds())/1000),
		slog.Bool("resumed", cs.DidResume),
	}
	attrs = append(attrs, peerAttrs(cs.PeerCertificates)...)
	attrs = append(attrs, slog.String("result", result))
	if err != nil {
		attrs = append(attrs, slog.String("reason", reason), slog.String("error", err.Error()))
		if suppressed > 0 {
			attrs = append(attrs, slog.Int("suppressed", suppressed))
		}
	}
	p.connLog.LogAttrs(context.Background(), slog.LevelInfo, "handshake", attrs...)
}

func peerAttrs(peer []*x509.Certificate) []slog.Attr {
	if len(peer) == 0 {
		return nil
	}
	c := peer[0]
	var sans []string
	sans = append(sans, prefixed("DNS:", c.DNSNames)...)
	for _, u := range c.URIs {
		sans = append(sans, "URI:"+u.String())
	}
	sans = append(sans, prefixed("email:", c.EmailAddresses)...)
	for _, ip := range c.IPAddresses {
		sans = append(sans, "IP:"+ip.String())
	}
	return []slog.Attr{
		slog.String("peer_subject", c.Subject.String()),
		slog.String("peer_issuer", c.Issuer.String()),
		slog.String("peer_serial", serialHex(c)),
		slog.Time("peer_not_before", c.NotBefore.UTC()),
		slog.Time("peer_not_after", c.NotAfter.UTC()),
		slog.Any("peer_sans", sans),
	}
}

func prefixed(p string, in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = p + s
	}
	return out
}

// serialHex prints a serial as Envoy does (BoringSSL BN_bn2hex, lowercase).
func serialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

func versionName(v uint16) string {
	if v == 0 {
		return ""
	}
	return tls.VersionName(v)
}

func cipherName(id uint16) string {
	if id == 0 {
		return ""
	}
	return tls.CipherSuiteName(id)
}

// failureLimiter lets one failure line per key through each window and
// counts the rest.
type failureLimiter struct {
	window time.Duration
	max    int
	mu     sync.Mutex
	seen   map[limitKey]*limitEntry
}

type limitKey struct{ listener, reason, ip string }

type limitEntry struct {
	since      time.Time
	suppressed int
}

func newFailureLimiter(window time.Duration) *failureLimiter {
	return &failureLimiter{window: window, max: 10000, seen: map[limitKey]*limitEntry{}}
}

// allow reports whether to log this failure and how many identical ones
// were suppressed before it.
func (l *failureLimiter) allow(listener, reason, ip string, now time.Time) (bool, int) {
	if l.window <= 0 {
		return true, 0
	}
	k := limitKey{listener, reason, ip}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.seen[k]
	if e != nil && now.Sub(e.since) < l.window {
		e.suppressed++
		return false, 0
	}
	n := 0
	if e != nil {
		n = e.suppressed
	}
	if e == nil && len(l.seen) >= l.max {
		// Under a spray from many addresses the map is bounded: entries are
		// dropped, and their counts go to a summary line via sweep.
		return true, 0
	}
	l.seen[k] = &limitEntry{since: now}
	return true, n
}

// sweep forgets expired entries and reports the suppressed counts they held
// that no later line carried.
func (l *failureLimiter) sweep(now time.Time, report func(k limitKey, n int)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, e := range l.seen {
		if now.Sub(e.since) >= l.window {
			if e.suppressed > 0 {
				report(k, e.suppressed)
			}
			delete(l.seen, k)
		}
	}
}
