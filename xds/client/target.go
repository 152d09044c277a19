package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// maxResponseBytes bounds one DiscoveryResponse. gRPC's default of 4 MiB is
// too small for an SDS response carrying large CRLs; Envoy sets no such limit.
const maxResponseBytes = 256 << 20

// keepaliveTime is above grpc-go's default server enforcement minimum (5
// minutes), so a stock server never answers our pings with GOAWAY
// "too_many_pings", yet a control plane that vanished without a FIN (a
// partition, a killed VM) is still detected and reconnected to.
const (
	keepaliveTime    = 6 * time.Minute
	keepaliveTimeout = 20 * time.Second
)

// checkTarget validates cfg.Target and reports whether it is a unix socket.
// Only "host:port" and unix socket targets are accepted: other gRPC schemes
// (dns:///, xds:///) would hide where the plaintext check applies. A unix
// socket is unix:///absolute/path (what certplane serve prints) or gRPC's
// unix:/absolute/path; a relative path would depend on the working
// directory, and unix://host/path names no socket at all.
func checkTarget(target string) (unix bool, host string, err error) {
	if target == "" {
		return false, "", errors.New("xds client: empty target: want host:port or unix:///path")
	}
	if rest, ok := strings.CutPrefix(target, "unix:"); ok {
		path := strings.TrimPrefix(rest, "//")
		if path == "" || path == "/" {
			return false, "", fmt.Errorf("xds client: target %q has no socket path: want unix:///path", target)
		}
		if !strings.HasPrefix(path, "/") {
			return false, "", fmt.Errorf("xds client: target %q: want unix:///absolute/path (a relative path or a host is not a socket path)", target)
		}
		return true, "", nil
	}
	if strings.Contains(target, "://") {
		return false, "", fmt.Errorf("xds client: target %q: unsupported scheme: want host:port or unix:///path", target)
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return false, "", fmt.Errorf("xds client: target %q: want host:port or unix:///path: %w", target, err)
	}
	if host == "" {
		return false, "", fmt.Errorf("xds client: target %q has no host", target)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return false, "", fmt.Errorf("xds client: target %q: port %q is not a number in 1..65535", target, port)
	}
	return false, host, nil
}

// isLoopback reports whether host names this machine without any lookup
// other than the conventional "localhost".
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// transportCredentials decides how the client talks to the control plane. It
// fails closed: plaintext TCP, even on loopback, needs Insecure. The stream
// carries private keys (SDS) and decides where traffic goes, and any local
// user can bind a free loopback port first and feed the proxy its own
// listeners, keys and backends; a unix socket is protected by file modes.
func transportCredentials(cfg *Config) (credentials.TransportCredentials, error) {
	unix, host, err := checkTarget(cfg.Target)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		if tc.MinVersion < tls.VersionTLS12 {
			tc.MinVersion = tls.VersionTLS12
		}
		return credentials.NewTLS(tc), nil
	}
	if !unix && !cfg.Insecure {
		where := "non-loopback"
		if isLoopback(host) {
			where = "loopback"
		}
		return nil, fmt.Errorf("xds client: plaintext TCP to %s target %q refused (any local user can listen there and serve its own keys and backends): use a unix:// socket or TLS, or set Insecure to allow it", where, cfg.Target)
	}
	return insecure.NewCredentials(), nil
}

// dialOptions builds the options of one connection attempt. gRPC's own
// reconnection is left unused: each attempt is a fresh ClientConn, so Run's
// backoff is the only retry policy.
func dialOptions(creds credentials.TransportCredentials) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseBytes), grpc.ForceCodecV2(newRecvCodec())),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.WithInitialWindowSize(flowWindow),
		grpc.WithInitialConnWindowSize(flowWindow),
	}
}

// flowWindow is the HTTP/2 receive window of the xDS connection and its
// stream: Envoy's default (Http2ProtocolOptions.initial_stream_window_size
// and initial_connection_window_size, 256 MiB), the same as the largest
// response the client accepts. gRPC-Go would start at 64 KiB and grow the
// window from its bandwidth-delay estimate, so the first large response
// (a trust Secret with a 1M-serial CRL is 46 MB) crawled through hundreds
// of WINDOW_UPDATE round trips: a revocation pushed after a restart reached
// the proxy a few hundred ms later than later ones. The control plane is
// the one peer and is trusted with keys already; the window is credit, not
// memory allocated up front.
const flowWindow = maxResponseBytes
