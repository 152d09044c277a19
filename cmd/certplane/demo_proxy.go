package main

import (
	"context"
	"errors"
	"io"
)

// startDemoProxy starts the fallback proxy for `certplane demo` on the
// example in dir (dir/certs and dir/config, as `certplane init` wrote them).
//
// Contract: it returns nil once the proxy accepts connections on the
// listener address of dir/config/listeners.yaml, keeps serving in the
// background until ctx is cancelled, and returns an error at once if it
// cannot start. It may write progress lines to stdout.
//
// The lead replaces this placeholder once the proxy package lands; until
// then the demo says plainly that no proxy runs.
func startDemoProxy(_ context.Context, _ string, _ io.Writer) error {
	return errors.New("the fallback proxy is not built yet in this version of certplane, " +
		"so nothing serves the HTTPS listener; the certificates, CRL, config and backends are real")
}
