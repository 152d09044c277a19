package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/certplane/certplane/pki"
)

// CRLCost is what a CRL of a given size costs the proxy (`certplane proxy
// --xds`, fed by a separate `certplane serve`, so the proxy's own memory is
// measured apart from the control plane's).
type CRLCost struct {
	Serials int `json:"serials"`
	// ProxyRSSMB is the proxy's resident memory after it served
	// Handshakes full handshakes; ProxyHWMMB its peak since start.
	ProxyRSSMB float64 `json:"proxy_rss_mb"`
	ProxyHWMMB float64 `json:"proxy_hwm_mb"`
	ServeRSSMB float64 `json:"serve_rss_mb"`
	ServeHWMMB float64 `json:"serve_hwm_mb"`
	// ServeBinary is "certplane serve"; ServeRefused is kept empty for
	// the report's older results (bench/cmd/benchproxy, which served when
	// the loader refused a large CRL, is gone: nothing refuses it now).
	ServeBinary  string `json:"serve_binary"`
	ServeRefused string `json:"serve_refused,omitempty"`
	Handshakes   int    `json:"handshakes"`
	// HandshakeP50MS is the client-side time of one full mTLS handshake;
	// ProxyCPUPerHandshakeUS the proxy's utime+stime over them, per handshake.
	HandshakeP50MS         float64 `json:"handshake_p50_ms"`
	ProxyCPUPerHandshakeUS float64 `json:"proxy_cpu_per_handshake_us"`
}

// crlCost runs serve + proxy with a CRL of the given PEM (signed by ca) and
// measures the proxy.
func crlCost(ctx context.Context, bin, work, name string, ca *pki.CA, crlPEM []byte, serials, handshakes int) (*CRLCost, error) {
	addrs := make([]string, 4)
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	xdsAddr, serveAdmin, proxyAdmin, listen := addrs[0], addrs[1], addrs[2], addrs[3]
	dir := filepath.Join(work, name)
	fx, err := newFixture(dir, fixtureOptions{listeners: 1, addr: func(int) string { return listen },
		backends: []string{"127.0.0.1:9"}, ca: ca, crlPEM: crlPEM})
	if err != nil {
		return nil, err
	}
	serveArgs := []string{"--certs", fx.certs, "--config", fx.config, "--xds-address", xdsAddr, "--insecure-xds", "--admin-address", serveAdmin}
	serve, err := startDaemon(filepath.Join(dir, "serve.log"), bin, append([]string{"serve", "--log-level", "warn"}, serveArgs...)...)
	if err != nil {
		return nil, err
	}
	defer func() { serve.stop() }()
	if err := serve.waitHTTP("http://"+serveAdmin+"/readyz", 120*time.Second); err != nil {
		return nil, err
	}
	serveBin := "certplane serve"
	if why := refusedFile(serve.log); why != "" {
		return nil, fmt.Errorf("certplane serve refused the %d-serial CRL: %s", serials, why)
	}
	px, err := startDaemon(filepath.Join(dir, "proxy.log"), bin, "proxy", "--xds", xdsAddr, "--insecure-xds", "--node-id", "cpbench-"+name,
		"--admin-address", proxyAdmin, "--log-file", os.DevNull, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	defer px.stop()
	if err := px.waitHTTP("http://"+proxyAdmin+"/readyz", 120*time.Second); err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(fx.ca.Cert)
	tc := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{fx.alice.TLSCertificate()}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	hs := func() (time.Duration, error) {
		t0 := time.Now()
		d := tls.Dialer{Config: tc}
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := d.DialContext(hctx, "tcp", listen)
		if err != nil {
			return 0, err
		}
		el := time.Since(t0)
		// TLS 1.3: the server's verdict on the client certificate comes
		// after the client's Finished, so a request proves acceptance. Any
		// HTTP answer will do (the backend is deliberately absent).
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")); err != nil {
			return 0, fmt.Errorf("handshake refused: %w", err)
		}
		line := make([]byte, 9)
		if _, err := io.ReadFull(c, line); err != nil || string(line) != "HTTP/1.1 " {
			return 0, fmt.Errorf("no HTTP answer after the handshake (%q): %v", line, err)
		}
		return el, nil
	}
	if err := pollUntil(ctx, 30*time.Second, func() bool { _, err := hs(); return err == nil }); err != nil {
		return nil, fmt.Errorf("%s: the proxy never completed a handshake on %s", name, listen)
	}
	cpu0 := cpuTicks(px.pid())
	lat := make([]time.Duration, 0, handshakes)
	for range handshakes {
		d, err := hs()
		if err != nil {
			return nil, err
		}
		lat = append(lat, d)
	}
	cpu := cpuTicks(px.pid()) - cpu0
	r := &CRLCost{Serials: serials, Handshakes: handshakes,
		ProxyRSSMB: mb(statusKB(px.pid(), "VmRSS")), ProxyHWMMB: mb(statusKB(px.pid(), "VmHWM")),
		ServeRSSMB: mb(statusKB(serve.pid(), "VmRSS")), ServeHWMMB: mb(statusKB(serve.pid(), "VmHWM")),
		ServeBinary:            serveBin,
		ProxyCPUPerHandshakeUS: float64(cpu) * 1e4 / float64(handshakes)}
	r.HandshakeP50MS, _ = quantiles(lat)
	return r, nil
}

// cpuTicks is utime+stime of pid, in clock ticks (1/100 s).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// refusedFile returns the loader's "over the limit" complaint from a serve
// log (JSON lines on stderr), if any, waiting briefly for the first reload.
func refusedFile(logPath string) string {
	var why string
	_ = pollUntil(context.Background(), 2*time.Second, func() bool {
		b, _ := os.ReadFile(logPath)
		if i := strings.Index(string(b), "file is "); i >= 0 {
			if j := strings.Index(string(b[i:]), " bytes\""); j > 0 && strings.Contains(string(b[i:i+j]), "over the limit") {
				why = string(b[i : i+j+6])
				return true
			}
		}
		return false
	})
	return why
}
