package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// startDemoProxy starts the fallback proxy for `certplane demo` on the
// example in dir (dir/certs and dir/config, as `certplane init` wrote them),
// in standalone mode: the control plane runs in-process and feeds the proxy
// over xDS, exactly as `certplane proxy --certs --config` does.
//
// Contract: it returns nil once the proxy accepts connections on the
// listener address of the example, keeps serving in the background until ctx
// is cancelled, and returns an error at once if it cannot start. The
// connection log (one JSON line per handshake and request) goes to stdout, so
// a refused curl shows its reason right there.
// demoAdmin is where the demo proxy serves /readyz, /status and the status page.
const demoAdmin = "127.0.0.1:18002"

func startDemoProxy(ctx context.Context, dir string, stdout io.Writer) error {
	args := []string{
		"--certs", filepath.Join(dir, "certs"),
		"--config", filepath.Join(dir, "config"),
		"--admin-address", demoAdmin,
		"--log-level", "warn",
		// The newest CRL of each CA survives a restart of the demo on DIR.
		"--state-dir", filepath.Join(dir, "state"),
	}
	// Refuse at once when another process holds the ports: its /readyz
	// would otherwise pass for ours.
	for _, addr := range []string{defaultInitListen, demoAdmin} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s is busy (is another demo or certplane proxy running?): %w", addr, err)
		}
		_ = ln.Close()
	}
	done := make(chan error, 1)
	go func() { done <- runProxy(ctx, args, stdout, os.Stderr) }()

	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("the proxy stopped before serving")
			}
			return err
		case <-deadline.C:
			return fmt.Errorf("the proxy did not listen on %s within 15s", defaultInitListen)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			// Ask /readyz rather than dialling the listener: a bare TCP probe
			// would show up in the connection log as a failed handshake.
			resp, err := http.Get("http://" + demoAdmin + "/readyz")
			if err != nil {
				continue
			}
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Fprintf(stdout, "proxy listening on https://%s (admin and status page: http://%s/)\n", defaultInitListen, demoAdmin)
				return nil
			}
		}
	}
}
