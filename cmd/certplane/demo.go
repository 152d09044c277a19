package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/certplane/certplane/demobackend"
)

// demoProxy is startDemoProxy; tests substitute a fake to exercise the demo
// without a proxy.
var demoProxy = startDemoProxy

func init() {
	register("demo", command{
		summary: "run the example end to end: init, two backends, the proxy",
		run:     runDemo,
	})
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo",
		"certplane demo [--dir DIR] [--listen ADDR] [--backends ADDR,ADDR] [--admin-address ADDR]",
		`Run the example of 'certplane init' end to end on this machine: write it to
a temporary directory (removed on exit) or to DIR, start demo backends that
answer "backend 1", "backend 2"... on --backends (default `+defaultInitBackends[0]+` and `+defaultInitBackends[1]+`),
start the fallback proxy on --listen (default `+defaultInitListen+`), and print the
curl commands to try. A DIR that already holds an init example is reused as
it is: its config keeps the addresses it was written with.
Interrupt (Ctrl-C) stops everything.`)
	dirFlag := fs.String("dir", "", "directory for the example (default: a temporary directory)")
	listen := fs.String("listen", defaultInitListen, "the proxy's listener address, written to a new example")
	backends := stringsFlag{}
	fs.Var(&backends, "backends", `demo backend addresses, comma-separated or repeated; port 0 picks a free port (default "`+strings.Join(defaultInitBackends, ",")+`")`)
	admin := fs.String("admin-address", demoAdmin, "the proxy's admin endpoint and status page")
	logf := addLogFlags(fs, "warn")
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if len(backends) == 0 {
		backends = defaultInitBackends
	}
	for _, f := range []struct{ name, addr string }{{"--listen", *listen}, {"--admin-address", *admin}} {
		if err := checkHostPort(f.name, f.addr); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger, err := logf.logger(stderr)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	// Stop the backends and wait for them: their ports are free when runDemo returns.
	defer func() { cancel(); wg.Wait() }()
	// The backends bind first: a new example's config names the ports they got.
	lns, err := listenBackends(ctx, backends)
	if err != nil {
		return err
	}
	bound := make([]string, len(lns))
	for i, ln := range lns {
		bound[i] = ln.Addr().String()
	}
	dir, cleanup, err := demoDir(*dirFlag, initOptions{listen: *listen, backends: bound})
	if err != nil {
		for _, ln := range lns {
			_ = ln.Close()
		}
		return err
	}
	defer cleanup()
	backendErr := serveBackends(ctx, lns, logger, &wg, stdout)

	proxyDone, err := demoProxy(ctx, dir, demoAddrs{listen: *listen, admin: *admin, log: logf}, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stdout, "\nThe example is in %s and both backends are up, but no proxy serves %s.\n", dir, *listen)
		return fmt.Errorf("start the proxy: %w", err)
	}
	printTryCommands(stdout, dir, *listen)
	fmt.Fprintln(stdout, "\nPress Ctrl-C to stop.")
	// Whatever ends the demo, the proxy is stopped and waited for: it has
	// logged every connection it accepted once it has returned.
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "stopping")
		if err := <-proxyDone; err != nil {
			return fmt.Errorf("stop the proxy: %w", err)
		}
		return nil
	case err := <-backendErr:
		cancel()
		<-proxyDone
		return err
	}
}

// serveBackends serves "backend 1", "backend 2"... on lns until ctx ends;
// the channel receives the error of a backend that fails.
func serveBackends(ctx context.Context, lns []net.Listener, logger *slog.Logger, wg *sync.WaitGroup, stdout io.Writer) <-chan error {
	errc := make(chan error, len(lns))
	for i, ln := range lns {
		name := fmt.Sprintf("backend %d", i+1)
		b := demobackend.New(name, logger.With("component", "backend", "name", name))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Serve(ctx, ln); err != nil {
				errc <- err
			}
		}()
		fmt.Fprintf(stdout, "%s listening on http://%s\n", name, ln.Addr())
	}
	return errc
}

// listenBackends binds one listener per demo backend address; on a failure
// it closes those already bound.
func listenBackends(ctx context.Context, addrs []string) ([]net.Listener, error) {
	var lns []net.Listener
	for i, addr := range addrs {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("start demo backend %d: %w (is another demo running?)", i+1, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// demoDir returns the directory to run the demo in and how to clean it up.
// An empty flag means a fresh temporary directory, removed afterwards; a
// directory that already holds an init example is reused; an empty or
// missing one gets a new example.
func demoDir(flagDir string, o initOptions) (string, func(), error) {
	if flagDir == "" {
		tmp, err := os.MkdirTemp("", "certplane-demo-")
		if err != nil {
			return "", nil, fmt.Errorf("create demo directory: %w", err)
		}
		cleanup := func() { _ = os.RemoveAll(tmp) }
		if err := initDir(tmp, o, time.Now()); err != nil {
			cleanup()
			return "", nil, err
		}
		return tmp, cleanup, nil
	}
	if isInitExample(flagDir) {
		return flagDir, func() {}, nil
	}
	if entries, err := os.ReadDir(flagDir); err == nil && len(entries) > 0 {
		return "", nil, fmt.Errorf("--dir %s is neither empty nor an example written by 'certplane init'", flagDir)
	}
	if err := initDir(flagDir, o, time.Now()); err != nil {
		return "", nil, err
	}
	return flagDir, func() {}, nil
}
