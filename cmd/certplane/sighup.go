package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/certplane/certplane/controlplane"
)

// reloadOnHUP has r reload on every SIGHUP until ctx is done: the
// operator's way to say that something changed that the watcher may not
// see (a network file system, a change inside the resync window). The
// reload goes through r's one loop, as file events and resyncs do.
func reloadOnHUP(ctx context.Context, r *controlplane.Runner, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	// Registered before returning, so no SIGHUP after this call can take
	// the default action (exit).
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the certificate and config directories")
				r.Reload()
			}
		}
	}()
}
