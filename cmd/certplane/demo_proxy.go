package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"time"
)

// demoAdmin is where the demo proxy serves /readyz, /status and the status
// page unless --admin-address says otherwise.
const demoAdmin = "127.0.0.1:18002"

// demoAddrs are the proxy's addresses in the demo.
type demoAddrs struct {
	listen string    // the example's listener
	admin  string    // the admin endpoint, asked for readiness
	log    *logFlags // the demo's own --log-format and --log-level, passed on
}

// startDemoProxy starts the fallback proxy for `certplane demo` on the
// example in dir (dir/certs and dir/config, as `certplane init` wrote them),
// in standalone mode: the control plane runs in-process and feeds the proxy
// over xDS, exactly as `certplane proxy --certs --config` does.
//
// Contract: once the proxy accepts connections on a.listen it returns a
// channel that receives the proxy's result after ctx is cancelled and the
// proxy has stopped (every connection it accepted logged by then). It
// returns an error at once if the proxy cannot start, and then the proxy
// has stopped. The connection log (one JSON line per handshake and request)
// goes to stdout, so a refused curl shows its reason right there;
// operational logs go to stderr.
func startDemoProxy(ctx context.Context, dir string, a demoAddrs, stdout, stderr io.Writer) (<-chan error, error) {
	args := []string{
		"--certs", filepath.Join(dir, "certs"),
		"--config", filepath.Join(dir, "config"),
		"--admin-address", a.admin,
		// The newest CRL of each CA survives a restart of the demo on DIR.
		"--state-dir", filepath.Join(dir, "state"),
	}
	// Refuse at once when another process holds the ports: its /readyz
	// would otherwise pass for ours.
	for _, addr := range []string{a.listen, a.admin} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s is busy (is another demo or certplane proxy running?): %w", addr, err)
		}
		_ = ln.Close()
	}
	if a.log != nil {
		args = append(args, a.log.args()...)
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { defer cancel(); done <- runProxy(pctx, args, stdout, stderr) }()

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
			return nil, err
		case <-deadline.C:
			cancel()
			<-done
			return nil, fmt.Errorf("the proxy did not listen on %s within 15s", a.listen)
		case <-ctx.Done():
			<-done
			return nil, ctx.Err()
		case <-tick.C:
			// Ask /readyz rather than dialling the listener: a bare TCP probe
			// would show up in the connection log as a failed handshake.
			resp, err := http.Get("http://" + a.admin + "/readyz")
			if err != nil {
				continue
			}
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Fprintf(stdout, "proxy listening on https://%s (admin and status page: http://%s/)\n", a.listen, a.admin)
				return done, nil
			}
		}
	}
}
