package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/controlplane"
	"github.com/certplane/certplane/status"
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

The xDS stream carries every private key served. By default it is the unix
socket `+xds.DefaultAddress+`, mode 0600 (its directory is
created 0700 when missing): only this process's user can connect. To let
Envoy run as another user, give both a group of their own with
--xds-socket-group and --xds-socket-mode 0660: every member of that group can
then read every key.

A TCP address needs xDS mutual TLS (--xds-cert, --xds-key, --xds-client-ca:
clients must present a certificate that chains to that CA, is not revoked
by --xds-client-crl or a CRL block of the CA file, and, with
--xds-bind-node-id, names their node id), or --insecure-xds, even on
loopback.`)
	certs := fs.String("certs", "", "certificate directory (server/, client/, trust/)")
	configDir := fs.String("config", "", "config directory (*.yaml)")
	xdsAddr := fs.String("xds-address", xds.DefaultAddress, "xDS listen address: unix:///path or host:port (TCP needs mTLS or --insecure-xds)")
	adminAddr := fs.String("admin-address", admin.DefaultAddress, "admin HTTP listen address (/healthz, /readyz, /status, /metrics); empty disables it")
	nodeID := fs.String("node-id", "", "serve only the node with this ID (default: every node gets the same configuration)")
	xdsCert := fs.String("xds-cert", "", "xDS mTLS: server certificate chain (PEM)")
	xdsKey := fs.String("xds-key", "", "xDS mTLS: server private key (PEM)")
	xdsCA := fs.String("xds-client-ca", "", "xDS mTLS: CA bundle that client certificates must chain to (PEM; X509 CRL blocks in it are checked too)")
	var xdsCRLs stringsFlag
	fs.Var(&xdsCRLs, "xds-client-crl", "xDS mTLS: CRL file (PEM or DER) of the client CA, checked on every handshake and reloaded when it changes; repeatable")
	bindNodeID := fs.Bool("xds-bind-node-id", false, "xDS mTLS: refuse a node id that is not an identity of the client certificate (a URI or DNS SAN, or the CN when it has neither)")
	socketMode := fs.String("xds-socket-mode", "0600", "permission bits of the xDS unix socket: 0600, or 0660 to let --xds-socket-group connect (every member can read every private key)")
	socketGroup := fs.String("xds-socket-group", "", "group (name or id) of the xDS unix socket, e.g. Envoy's own group")
	insecureXDS := fs.Bool("insecure-xds", false, "allow plaintext xDS on a TCP address, loopback included: any local user (on loopback) or anyone who reaches the port can read every private key served")
	debounce := durationFlag{d: watcher.DefaultHoldOff}
	fs.Var(&debounce, "debounce", "quiet time after a file change before reloading")
	maxDelay := durationFlag{d: watcher.DefaultMaxDelay}
	fs.Var(&maxDelay, "max-delay", "longest wait from a change to its reload, however busy the directories")
	resync := durationFlag{d: watcher.DefaultResync}
	fs.Var(&resync, "resync", "reload periodically even without file events (inotify can miss some)")
	logf := addLogFlags(fs, "info")
	expiryWarning := durationFlag{d: status.DefaultExpiryWarning}
	fs.Var(&expiryWarning, "expiry-warning", "warn (log, certplane_expiring_soon, status page) when a served certificate or a CRL's nextUpdate is this close")
	trust := addTrustFlags(fs, false)
	dataPlane := fs.String("data-plane", "envoy", "who consumes the xDS resources: envoy (a listener with client_auth.ocsp mode require or an issuer entry in allow/subjects is refused: Envoy cannot check client OCSP or read the issuer), or proxy (only certplane proxies, which enforce them)")
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if *certs == "" || *configDir == "" {
		return usageError("--certs and --config are required")
	}
	if *dataPlane != "envoy" && *dataPlane != "proxy" {
		return usageError("--data-plane %q: want envoy or proxy", *dataPlane)
	}
	log, err := logf.logger(stderr)
	if err != nil {
		return err
	}
	sec := xds.Security{
		CertFile: *xdsCert, KeyFile: *xdsKey, ClientCAFile: *xdsCA, ClientCRLFiles: xdsCRLs,
		Insecure: *insecureXDS, SocketGroup: *socketGroup, Logger: log,
	}
	mode, err := parseSocketMode(*socketMode, *socketGroup)
	if err != nil {
		return err
	}
	sec.SocketMode = mode
	if *bindNodeID && *xdsCA == "" {
		return usageError("--xds-bind-node-id needs xDS mTLS (--xds-cert, --xds-key, --xds-client-ca): a node id is bound to a client certificate")
	}

	reg := admin.NewRegistry()
	cp, err := controlplane.New(controlplane.Options{
		CertsDir: *certs, ConfigDir: *configDir, NodeID: *nodeID, BindNodeID: *bindNodeID,
		HoldOff: debounce.d, MaxDelay: maxDelay.d, Resync: resync.d,
		Registry: reg, Logger: log, ExpiryWarning: expiryWarning.d,
		StateDir: trust.stateDir, MaxTrustStoreSize: trust.maxStore.n,
		ProxyOnly: *dataPlane == "proxy",
		// A backend on the admin endpoint and a client CA that xDS and a
		// listener share are warnings (log and /status).
		AdminAddresses: nonEmpty(*adminAddr),
		Warnings:       sharedCAWarnings(*xdsCA),
		// serve only serves: a push copies a large trust bundle once.
		PaceMemory: true,
	})
	if err != nil {
		return err
	}
	lis, creds, err := xds.Listen(*xdsAddr, sec)
	if err != nil {
		return err
	}
	if who := xds.PlaintextExposure(*xdsAddr, sec); who != "" {
		log.Warn("xds: plaintext TCP without authentication", "address", *xdsAddr,
			"exposed", "every private key served (SDS secrets) and the whole configuration", "to", who)
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
	reloadOnHUP(ctx, cp, log)
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
	log.Info("xds listening", "address", lis.Addr().String(), "mtls", *xdsCert != "", "client_crls", len(xdsCRLs),
		"bind_node_id", *bindNodeID, "node_id", *nodeID)
	if adminLis != nil {
		h := admin.Handler(admin.Options{
			Status:   func() any { return status.Status{ControlPlane: cp.Status()} },
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

// parseSocketMode reads --xds-socket-mode (octal). It refuses bits for other
// users, and a group that the mode would not let in.
func parseSocketMode(s, group string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	mode := fs.FileMode(n)
	if err != nil || mode&^fs.ModePerm != 0 {
		return 0, usageError("--xds-socket-mode %q: want octal permission bits such as 0600 or 0660", s)
	}
	if mode&0o007 != 0 {
		return 0, usageError("--xds-socket-mode %04o lets every local user connect and read every private key served; use 0600, or 0660 with --xds-socket-group", mode)
	}
	if mode&0o600 != 0o600 {
		return 0, usageError("--xds-socket-mode %04o: the owner needs read and write (0600)", mode)
	}
	if group != "" && mode&0o020 == 0 {
		return 0, usageError("--xds-socket-group %s needs a --xds-socket-mode that lets the group connect (0660)", group)
	}
	return mode, nil
}

// loadWarningSharedCA is load, plus a warning on each trust store that
// shares a CA with the xDS client CA file (see xds.SharedClientCAWarnings),
// sharedCAWarnings warns when the xDS client CA is also a listener's
// trust-store CA (a data-plane client could then fetch server keys).
func sharedCAWarnings(xdsCA string) func(*config.Model) []config.Problem {
	if xdsCA == "" {
		return nil
	}
	return func(m *config.Model) []config.Problem { return xds.SharedClientCAWarnings(m, xdsCA) }
}
