package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
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
		"certplane demo [--dir DIR]",
		`Run the example of 'certplane init' end to end on this machine: write it to
a temporary directory (removed on exit) or to DIR, start two demo backends
that answer "backend 1" and "backend 2" on `+defaultInitBackends[0]+` and `+defaultInitBackends[1]+`,
start the fallback proxy on `+defaultInitListen+`, and print the curl commands
to try. A DIR that already holds an init example is reused as it is.
Interrupt (Ctrl-C) stops everything.`)
	dirFlag := fs.String("dir", "", "directory for the example (default: a temporary directory)")
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	dir, cleanup, err := demoDir(*dirFlag)
	if err != nil {
		return err
	}
	defer cleanup()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var wg sync.WaitGroup
	// Stop the backends and wait for them: their ports are free when runDemo returns.
	defer func() { cancel(); wg.Wait() }()
	backendErr := make(chan error, len(defaultInitBackends))
	for i, addr := range defaultInitBackends {
		name := fmt.Sprintf("backend %d", i+1)
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("start demo %s: %w (is another demo running?)", name, err)
		}
		b := demobackend.New(name, logger.With("component", "backend", "name", name))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Serve(ctx, ln); err != nil {
				backendErr <- err
			}
		}()
		fmt.Fprintf(stdout, "%s listening on http://%s\n", name, addr)
	}

	if err := demoProxy(ctx, dir, stdout); err != nil {
		fmt.Fprintf(stdout, "\nThe example is in %s and both backends are up, but no proxy serves %s.\n", dir, defaultInitListen)
		return fmt.Errorf("start the proxy: %w", err)
	}
	printTryCommands(stdout, dir, defaultInitListen)
	fmt.Fprintln(stdout, "\nPress Ctrl-C to stop.")
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "stopping")
		return nil
	case err := <-backendErr:
		return err
	}
}

// demoDir returns the directory to run the demo in and how to clean it up.
// An empty flag means a fresh temporary directory, removed afterwards; a
// directory that already holds an init example is reused; an empty or
// missing one gets a new example.
func demoDir(flagDir string) (string, func(), error) {
	o := initOptions{listen: defaultInitListen, backends: defaultInitBackends}
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
