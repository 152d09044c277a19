package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/watcher"
	"github.com/certplane/certplane/xds"
)

func init() {
	register("serve", command{
		summary: "serve the certificate and config directories to Envoy over xDS (ADS)",
		run:     runServe,
	})
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve",
		"certplane serve --certs DIR --config DIR [flags]",
		`Watch the certificate and config directories and serve what is valid to
Envoy (or certplane proxy) over the aggregated discovery service. A listener
whose inputs become invalid keeps its last good version while the others
update; every problem is logged (JSON, on stderr) with its file and shown on
the admin endpoint's /status.

The xDS stream carries private keys. It listens on loopback by default; a
unix socket (unix:///path) is created mode 0600. A non-loopback TCP address
needs --xds-cert, --xds-key and --xds-client-ca (mutual TLS: clients must
present a certificate issued by that CA), or --insecure-xds.`)
	certs := fs.String("certs", "", "certificate directory (server/, client/, trust/)")
	configDir := fs.String("config", "", "config directory (*.yaml)")
	xdsAddr := fs.String("xds-address", xds.DefaultAddress, "xDS listen address: host:port or unix:///path")
	adminAddr := fs.String("admin-address", admin.DefaultAddress, "admin HTTP listen address (/healthz, /readyz, /status, /metrics); empty disables it")
	nodeID := fs.String("node-id", "", "serve only the node with this ID (default: every node gets the same configuration)")
	xdsCert := fs.String("xds-cert", "", "xDS mTLS: server certificate chain (PEM)")
	xdsKey := fs.String("xds-key", "", "xDS mTLS: server private key (PEM)")
	xdsCA := fs.String("xds-client-ca", "", "xDS mTLS: CA bundle that client certificates must chain to (PEM)")
	insecureXDS := fs.Bool("insecure-xds", false, "allow plaintext xDS on a non-loopback address (anyone who reaches it can read every private key)")
	debounce := durationFlag{d: watcher.DefaultHoldOff}
	fs.Var(&debounce, "debounce", "quiet time after a file change before reloading")
	maxDelay := durationFlag{d: watcher.DefaultMaxDelay}
	fs.Var(&maxDelay, "max-delay", "longest wait from a change to its reload, however busy the directories")
	resync := durationFlag{d: watcher.DefaultResync}
	fs.Var(&resync, "resync", "reload periodically even without file events (inotify can miss some)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	expiryWarning := durationFlag{d: admin.DefaultExpiryWarning}
	fs.Var(&expiryWarning, "expiry-warning", "warn (log, certplane_expiring_soon, status page) when a served certificate or a CRL's nextUpdate is this close")
	trust := addTrustFlags(fs, false)
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if *certs == "" || *configDir == "" {
		return usageError("--certs and --config are required")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	reg := admin.NewRegistry()
	cp, err := xds.NewControlPlane(xds.Options{
		CertsDir: *certs, ConfigDir: *configDir, NodeID: *nodeID,
		HoldOff: debounce.d, MaxDelay: maxDelay.d, Resync: resync.d,
		Registry: reg, Logger: log, ExpiryWarning: expiryWarning.d,
		StateDir: trust.stateDir, MaxTrustStoreSize: trust.maxStore.n,
	})
	if err != nil {
		return err
	}
	lis, creds, err := xds.Listen(*xdsAddr, xds.Security{
		CertFile: *xdsCert, KeyFile: *xdsKey, ClientCAFile: *xdsCA, Insecure: *insecureXDS,
	})
	if err != nil {
		return err
	}
	var adminLis net.Listener
	if *adminAddr != "" {
		if adminLis, err = net.Listen("tcp", *adminAddr); err != nil {
			lis.Close()
			return fmt.Errorf("admin: %w", err)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		what string
		err  error
	}
	results := make(chan result, 3)
	running := 0
	start := func(what string, f func() error) {
		running++
		go func() { results <- result{what, f()} }()
	}
	start("control plane", func() error { return cp.Run(ctx) })
	start("xds server", func() error { return cp.Serve(ctx, lis, creds) })
	log.Info("xds listening", "address", lis.Addr().String(), "mtls", *xdsCert != "", "node_id", *nodeID)
	if adminLis != nil {
		h := admin.Handler(admin.Options{
			Status:   func() any { return admin.Status{ControlPlane: cp.Status()} },
			Ready:    cp.Ready,
			Registry: reg,
			Logger:   log.With("component", "admin"),
		})
		start("admin server", func() error { return admin.Serve(ctx, adminLis, h) })
		log.Info("admin listening", "address", adminLis.Addr().String())
	}

	// The first to stop (a signal, or a server failing) stops the others.
	var firstErr error
	for range running {
		r := <-results
		if r.err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", r.what, r.err)
		}
		cancel()
	}
	if firstErr != nil && !errors.Is(firstErr, context.Canceled) {
		return firstErr
	}
	log.Info("stopped")
	return nil
}
