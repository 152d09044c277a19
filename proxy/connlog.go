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

// The connection log and the request log use the keys of the json_format
// that certplane gives Envoy's access logs (envoy/accesslog.go,
// docs/resources.md "access_log"), with values printed as Envoy prints them,
// so an operator reads the same field names from both data planes:
//
//	key               Envoy operator                          proxy
//	start_time        %START_TIME%                            connection accepted / request started
//	listener          (literal listener name)                 listener name
//	client            %DOWNSTREAM_REMOTE_ADDRESS%             peer ip:port
//	sni               %REQUESTED_SERVER_NAME%                 ClientHello server name
//	tls_version       %DOWNSTREAM_TLS_VERSION%                TLSv1.2, TLSv1.3
//	tls_cipher        %DOWNSTREAM_TLS_CIPHER%                 OpenSSL/BoringSSL suite name
//	peer_subject      %DOWNSTREAM_PEER_SUBJECT%               RFC 2253
//	peer_issuer       %DOWNSTREAM_PEER_ISSUER%                RFC 2253
//	peer_serial       %DOWNSTREAM_PEER_SERIAL%                lower-case hex
//	peer_not_before   %DOWNSTREAM_PEER_CERT_V_START%          same time format as start_time
//	peer_not_after    %DOWNSTREAM_PEER_CERT_V_END%
//	transport_failure %DOWNSTREAM_TRANSPORT_FAILURE_REASON%   the failure reason enum (mtls.Reason;
//	                                                          Envoy prints its TLS stack's error text)
//	duration_ms       %DURATION%                              handshake line: the handshake, logged when
//	                                                          it ends (Envoy logs the whole connection at
//	                                                          close; equal for a failed handshake);
//	                                                          request line: the request. Fractional ms.
//	bytes_received    %BYTES_RECEIVED%                        handshake line: bytes read on the connection
//	bytes_sent        %BYTES_SENT%                            so far; request line: body bytes
//	method, path      %REQ(:METHOD)%, %REQ(:PATH)%            request target as received (query included)
//	protocol          %PROTOCOL%                              HTTP/1.1, HTTP/2
//	status            %RESPONSE_CODE%
//	upstream_host     %UPSTREAM_HOST%                         chosen backend host:port
//
// Keys only the proxy writes: event (handshake, request, recheck), result
// (ok, fail), error, alpn, resumed, peer_sans, suppressed on handshake
// lines; authority, upstream_cluster, detail, upstream_error on request
// lines. Absent values are omitted where Envoy would print null.
const (
	keyStartTime        = "start_time"
	keyTransportFailure = "transport_failure"
)

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
	p.handshakes.record(reason, time.Now())
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
		slog.String(keyStartTime, envoyTime(tc.accepted)),
		slog.String("client", client),
		slog.String("listener", listener),
		slog.String("sni", cs.ServerName),
		slog.String("tls_version", versionName(cs.Version)),
		slog.String("tls_cipher", cipherName(cs.CipherSuite)),
		slog.String("alpn", cs.NegotiatedProtocol),
		slog.Float64("duration_ms", float64(dur.Microseconds())/1000),
		slog.Int64("bytes_received", tc.rx.Load()),
		slog.Int64("bytes_sent", tc.tx.Load()),
		slog.Bool("resumed", cs.DidResume),
	}
	attrs = append(attrs, peerAttrs(cs.PeerCertificates)...)
	attrs = append(attrs, slog.String("result", result))
	if err != nil {
		attrs = append(attrs, slog.String(keyTransportFailure, reason), slog.String("error", err.Error()))
		if suppressed > 0 {
			attrs = append(attrs, slog.Int("suppressed", suppressed))
		}
	}
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn // a refused client is what operators filter for
	}
	p.connLog.LogAttrs(context.Background(), level, "handshake", attrs...)
}

// envoyTime prints a time as Envoy's access log does by default
// (%Y-%m-%dT%H:%M:%E3SZ, UTC).
func envoyTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func peerAttrs(peer []*x509.Certificate) []slog.Attr {
	if len(peer) == 0 {
		return nil
	}
	c := peer[0]
	sans := prefixed("DNS:", c.DNSNames) // [] rather than null when there are none
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
		slog.String("peer_not_before", envoyTime(c.NotBefore)),
		slog.String("peer_not_after", envoyTime(c.NotAfter)),
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

// versionName prints a TLS version as Envoy's %DOWNSTREAM_TLS_VERSION%
// does (SSL_get_version).
func versionName(v uint16) string {
	switch v {
	case 0:
		return ""
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return tls.VersionName(v)
}

// openSSLSuiteNames maps Go's suite IDs back to the names Envoy's
// %DOWNSTREAM_TLS_CIPHER% prints (the names cipher_suites takes). TLS 1.3
// suites have the same name in Go and OpenSSL.
var openSSLSuiteNames = func() map[uint16]string {
	m := make(map[uint16]string, len(boringSuites))
	for name, id := range boringSuites {
		m[id] = name
	}
	return m
}()

func cipherName(id uint16) string {
	if id == 0 {
		return ""
	}
	if n, ok := openSSLSuiteNames[id]; ok {
		return n
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
