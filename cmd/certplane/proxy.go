package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/controlplane"
	"github.com/certplane/certplane/proxy"
	"github.com/certplane/certplane/status"
	"github.com/certplane/certplane/xds"
	"github.com/certplane/certplane/xds/client"
)

func init() {
	register("proxy", command{
		summary: "run the bundled HTTPS data plane (standalone, or fed by a remote certplane serve)",
		run:     runProxy,
	})
}

// proxyFlags are the flags of `certplane proxy`.
type proxyFlags struct {
	certs, config                   string
	xdsAddr, xdsCert, xdsKey, xdsCA string
	xdsInsecure                     bool
	nodeID, nodeCluster             string
	adminAddr, logFile              string
	log                             *logFlags
	pprof, noRequestLog             bool
	drain, logFlush                 time.Duration
	expiryWarning                   durationFlag
	trust                           trustFlags
}

const proxyUsage = `Terminates HTTPS with mutual TLS and forwards to backends round robin,
from the same xDS resources Envoy gets.

Standalone (default): the control plane runs in this process, watching
--certs and --config, and feeds the proxy over a private unix socket.
Remote: --xds connects to a running 'certplane serve' (host:port or
unix:///path), with xDS mTLS when --xds-cert, --xds-key and --xds-ca are set.

The connection log (one JSON line per handshake and per request) goes to
stdout, or to --log-file. Operational logs go to stderr.`

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f proxyFlags
	fs := newFlagSet("proxy", "certplane proxy [--certs DIR --config DIR | --xds ADDR] [flags]", proxyUsage)
	fs.StringVar(&f.certs, "certs", "certs", "certificate directory (standalone mode)")
	fs.StringVar(&f.config, "config", "config", "config directory (standalone mode)")
	fs.StringVar(&f.xdsAddr, "xds", "", "address of a remote certplane serve: host:port or unix:///path")
	fs.StringVar(&f.xdsCert, "xds-cert", "", "client certificate for xDS mTLS (PEM)")
	fs.StringVar(&f.xdsKey, "xds-key", "", "client key for xDS mTLS (PEM)")
	fs.StringVar(&f.xdsCA, "xds-ca", "", "CA bundle that signs the xDS server certificate (PEM)")
	fs.BoolVar(&f.xdsInsecure, "insecure-xds", false, "allow plaintext TCP xDS, even to loopback: it carries private keys and decides where traffic goes, and any local user can listen on a loopback port first; prefer unix:// or TLS")
	fs.StringVar(&f.nodeID, "node-id", "", "xDS node id (default: certplane-proxy-<hostname>)")
	fs.StringVar(&f.nodeCluster, "node-cluster", "certplane-proxy", "xDS node cluster")
	fs.StringVar(&f.adminAddr, "admin-address", "127.0.0.1:18002", "admin endpoint: /healthz /readyz /status /metrics (empty: off)")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go's profiler (net/http/pprof) under /debug/pprof/ on the admin endpoint; refused unless --admin-address is loopback")
	fs.StringVar(&f.logFile, "log-file", "", "write the connection log to this file instead of stdout")
	requestLog := fs.Bool("request-log", true, "write one connection-log line per request (false: handshake lines only; requests are still counted in the metrics)")
	fs.DurationVar(&f.logFlush, "log-flush-interval", proxy.DefaultLogFlushInterval, "batch connection-log lines for up to this long (and 64 KiB) before writing them; 0 writes each line at once")
	f.log = addLogFlags(fs, "info")
	fs.DurationVar(&f.drain, "drain-timeout", 30*time.Second, "how long open connections may finish on shutdown")
	f.expiryWarning = durationFlag{d: status.DefaultExpiryWarning}
	fs.Var(&f.expiryWarning, "expiry-warning", "warn (log, certplane_expiring_soon, status page) when a certificate or a CRL's nextUpdate is this close")
	f.trust.register(fs, false)
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if f.xdsAddr != "" && f.trust.set(fs) {
		return usageError("--state-dir and --max-trust-store-size apply to standalone mode; with --xds, give them to certplane serve")
	}
	f.noRequestLog = !*requestLog
	if f.pprof {
		if f.adminAddr == "" {
			return usageError("--pprof needs the admin endpoint (--admin-address)")
		}
		if err := admin.LoopbackOnly(f.adminAddr); err != nil {
			return usageError("--pprof: --admin-address %v", err)
		}
	}
	log, err := f.log.logger(stderr)
	if err != nil {
		return err
	}
	if (f.xdsCert == "") != (f.xdsKey == "") {
		return usageError("--xds-cert and --xds-key go together")
	}
	if f.xdsAddr == "" && (f.xdsCert != "" || f.xdsCA != "") {
		return usageError("--xds-cert, --xds-key and --xds-ca need --xds")
	}
	logRuntime(log)
	connOut := stdout
	if f.logFile != "" {
		fl, err := os.OpenFile(f.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		defer fl.Close()
		connOut = fl
	}
	// Batched, so that a request costs no write(2) of its own; flushed
	// before the file closes (defers run in reverse).
	lb := proxy.NewLogBuffer(connOut, f.logFlush)
	defer lb.Close()
	reg := admin.NewRegistry()
	p := proxy.New(proxy.Options{
		Logger:       log.With("component", "proxy"),
		ConnLog:      slog.New(slog.NewJSONHandler(lb, nil)),
		ConnLogOut:   lb,
		Registry:     reg,
		DrainTimeout: f.drain,
		NoRequestLog: f.noRequestLog,
		// Standalone, the embedded control plane logs expiry with the files.
		ExpiryWarning: f.expiryWarning.d,
		QuietExpiry:   f.xdsAddr == "",
	})
	cfg := client.Config{NodeID: f.nodeID, NodeCluster: f.nodeCluster, Insecure: f.xdsInsecure}
	if cfg.NodeID == "" {
		host, _ := os.Hostname()
		cfg.NodeID = "certplane-proxy-" + host
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	statusDoc := func() any { return status.Status{Proxy: p.Status()} }
	ready := p.Ready
	// Every component runs in g; the first failure stops the others. Each
	// return path stops and waits for all of them before anything they use
	// (the embedded control plane's socket directory) goes away.
	g := &components{cancel: cancel, log: log}
	cleanup := func() {}
	defer func() { _ = g.stop(); cleanup() }()
	if f.xdsAddr != "" {
		cfg.Target = f.xdsAddr
		if f.xdsCA != "" || f.xdsCert != "" {
			tc, err := xdsClientTLS(f)
			if err != nil {
				return err
			}
			cfg.TLS = tc
		}
	} else {
		cp, target, done, err := startEmbedded(ctx, f, reg, log, g)
		if err != nil {
			return err
		}
		cleanup = done
		cfg.Target = target
		statusDoc = func() any { return status.Status{ControlPlane: cp.Status(), Proxy: p.Status()} }
		ready = func() bool { return cp.Ready() && p.Ready() }
	}
	if f.adminAddr != "" {
		lis, err := net.Listen("tcp", f.adminAddr)
		if err != nil {
			return fmt.Errorf("--admin-address: %w", err)
		}
		h := admin.Handler(admin.Options{Status: statusDoc, Ready: ready, Registry: reg, Logger: log.With("component", "admin"), Pprof: f.pprof})
		g.start(func() error { return admin.Serve(ctx, lis, h) })
		log.Info("admin endpoint", "address", lis.Addr().String())
	}
	runErr := p.Run(ctx, cfg)
	if err := g.stop(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// components runs the long-lived parts beside the proxy (embedded control
// plane, xDS server, admin endpoint). There is no results channel to close:
// stop cancels them all and waits until every one has returned.
type components struct {
	cancel context.CancelFunc
	log    *slog.Logger
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error // the first failure
}

// start runs fn in the background; an error other than cancellation is
// logged, kept if it is the first, and stops every other component.
func (g *components) start(fn func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := fn()
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		g.log.Error("component stopped", "error", err)
		g.mu.Lock()
		if g.err == nil {
			g.err = err
		}
		g.mu.Unlock()
		g.cancel()
	}()
}

// stop cancels all components, waits for them and returns the first failure.
func (g *components) stop() error {
	g.cancel()
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// startEmbedded runs the control plane in this process on a private unix
// socket (mode 0600 in a fresh 0700 directory), so that standalone mode
// consumes exactly the resources a remote `certplane serve` would send.
func startEmbedded(ctx context.Context, f proxyFlags, reg *prometheus.Registry, log *slog.Logger, g *components) (*controlplane.Runner, string, func(), error) {
	cp, err := controlplane.New(controlplane.Options{CertsDir: f.certs, ConfigDir: f.config, Registry: reg, Logger: log, ExpiryWarning: f.expiryWarning.d,
		StateDir: f.trust.stateDir, MaxTrustStoreSize: f.trust.maxStore.n, AdminAddresses: nonEmpty(f.adminAddr), ProxyOnly: true})
	if err != nil {
		return nil, "", nil, err
	}
	dir, err := os.MkdirTemp("", "certplane-xds-")
	if err != nil {
		return nil, "", nil, fmt.Errorf("embedded control plane: %w", err)
	}
	target := "unix://" + filepath.Join(dir, "xds.sock")
	lis, creds, err := xds.Listen(target, xds.Security{})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", nil, fmt.Errorf("embedded control plane: %w", err)
	}
	g.start(func() error { return cp.Run(ctx) })
	g.start(func() error { return cp.Serve(ctx, lis, creds) })
	reloadOnHUP(ctx, cp, log)
	return cp, target, func() { _ = os.RemoveAll(dir) }, nil
}

// xdsClientTLS is the proxy's side of xDS mTLS.
func xdsClientTLS(f proxyFlags) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.xdsCert != "" {
		kp, err := tls.LoadX509KeyPair(f.xdsCert, f.xdsKey)
		if err != nil {
			return nil, fmt.Errorf("--xds-cert/--xds-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	if f.xdsCA != "" {
		pem, err := os.ReadFile(f.xdsCA)
		if err != nil {
			return nil, fmt.Errorf("--xds-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--xds-ca %s: no PEM certificate found", f.xdsCA)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
