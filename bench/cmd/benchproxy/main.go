// Command benchproxy is `certplane proxy` (standalone) and `certplane serve`
// wired exactly as cmd/certplane wires them, with one difference: the
// loader's per-file size limit is a flag. config.DefaultMaxFileSize (1 MiB)
// refuses the benchmark's CRLs (100,000 serials are 4.8 MB of PEM,
// 1,000,000 are 48 MB), so bench/run.sh and cpbench fall back to this
// binary when the real one refuses them, and say so in RESULTS.md.
// Everything else (control plane, ADS over a private unix socket, proxy,
// admin endpoint, connection log) is the product's code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/controlplane"
	"github.com/certplane/certplane/proxy"
	"github.com/certplane/certplane/status"
	"github.com/certplane/certplane/xds"
	"github.com/certplane/certplane/xds/client"
)

func main() {
	mode := flag.String("mode", "standalone", "standalone (certplane proxy --certs --config) or serve (certplane serve)")
	certs := flag.String("certs", "", "certificate directory")
	cfg := flag.String("config", "", "config directory")
	adminAddr := flag.String("admin-address", "127.0.0.1:18002", "admin endpoint")
	xdsAddr := flag.String("xds-address", xds.DefaultAddress, "serve: xDS listen address")
	logFile := flag.String("log-file", "", "standalone: connection log file (default stdout)")
	maxFile := flag.Int64("max-file-size", 256<<20, "per-file size limit of the loader, bytes")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this loopback address (profiling a benchmark run)")
	flag.Parse()
	if *pprofAddr != "" {
		lis, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchproxy: -pprof:", err)
			os.Exit(1)
		}
		go func() { _ = http.Serve(lis, nil) }() // net/http/pprof registers on the default mux
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch *mode {
	case "standalone":
		err = standalone(ctx, log, *certs, *cfg, *adminAddr, *logFile, *maxFile)
	case "serve":
		err = serve(ctx, log, *certs, *cfg, *adminAddr, *xdsAddr, *maxFile)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "benchproxy:", err)
		os.Exit(1)
	}
}

func controlPlane(log *slog.Logger, certs, cfg string, maxFile int64, reg *controlplane.Options) (*controlplane.Runner, error) {
	o := *reg
	o.CertsDir, o.ConfigDir, o.Logger = certs, cfg, log
	o.Load = config.Loader{MaxFileSize: maxFile}.Load
	return controlplane.New(o)
}

func serveAdmin(ctx context.Context, addr string, o admin.Options, errc chan<- error) error {
	if addr == "" {
		return nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	go func() { errc <- admin.Serve(ctx, lis, admin.Handler(o)) }()
	return nil
}

func serve(ctx context.Context, log *slog.Logger, certs, cfg, adminAddr, xdsAddr string, maxFile int64) error {
	reg := admin.NewRegistry()
	cp, err := controlPlane(log, certs, cfg, maxFile, &controlplane.Options{Registry: reg})
	if err != nil {
		return err
	}
	lis, creds, err := xds.Listen(xdsAddr, xds.Security{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() { errc <- cp.Run(ctx) }()
	go func() { errc <- cp.Serve(ctx, lis, creds) }()
	n := 2
	if adminAddr != "" {
		n++
	}
	if err := serveAdmin(ctx, adminAddr, admin.Options{Status: func() any { return status.Status{ControlPlane: cp.Status()} },
		Ready: cp.Ready, Registry: reg, Logger: log}, errc); err != nil {
		return err
	}
	return wait(cancel, errc, n, nil)
}

func standalone(ctx context.Context, log *slog.Logger, certs, cfg, adminAddr, logFile string, maxFile int64) error {
	connOut := os.Stdout
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return err
		}
		defer f.Close()
		connOut = f
	}
	reg := admin.NewRegistry()
	p := proxy.New(proxy.Options{Logger: log.With("component", "proxy"), ConnLog: slog.New(slog.NewJSONHandler(connOut, nil)), Registry: reg})
	cp, err := controlPlane(log, certs, cfg, maxFile, &controlplane.Options{Registry: reg})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "benchproxy-xds-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	target := "unix://" + filepath.Join(dir, "xds.sock")
	lis, creds, err := xds.Listen(target, xds.Security{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() { errc <- cp.Run(ctx) }()
	go func() { errc <- cp.Serve(ctx, lis, creds) }()
	n := 2
	if adminAddr != "" {
		n++
	}
	if err := serveAdmin(ctx, adminAddr, admin.Options{
		Status: func() any { return status.Status{ControlPlane: cp.Status(), Proxy: p.Status()} },
		Ready:  func() bool { return cp.Ready() && p.Ready() }, Registry: reg, Logger: log}, errc); err != nil {
		return err
	}
	runErr := p.Run(ctx, client.Config{Target: target, NodeID: "benchproxy", NodeCluster: "certplane-proxy"})
	cancel()
	return wait(cancel, errc, n, runErr)
}

// wait stops everything at the first failure (or at the end of ctx) and
// returns the first real error.
func wait(cancel context.CancelFunc, errc <-chan error, n int, first error) error {
	if first != nil {
		cancel()
	}
	for range n {
		err := <-errc
		cancel()
		if first == nil && err != nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	return first
}
