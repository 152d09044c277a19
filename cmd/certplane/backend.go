package main

import (
	"context"
	"io"
	"time"

	"github.com/certplane/certplane/demobackend"
)

func init() {
	register("backend", command{
		summary: "run a demo HTTP backend (or probe one, for container health checks)",
		run:     runBackend,
	})
}

func runBackend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backend",
		"certplane backend --name NAME --listen ADDR | certplane backend --probe URL [--timeout D]",
		`Run a plain-HTTP demo backend until interrupted. GET / answers "NAME\n"
with header X-Backend: NAME; GET /headers returns the request (headers,
remote address) as JSON, to see the x-forwarded-client-cert a proxy added;
GET /healthz answers 200 "ok" (503 after POST /healthz/fail, 200 again after
POST /healthz/ok).

With --probe, GET URL once and exit 0 on a 2xx answer, else 1: the health
check of a scratch container image, which has no shell or curl.`)
	name := fs.String("name", "backend", "name the backend answers with")
	listen := fs.String("listen", "127.0.0.1:9001", "address to listen on")
	probe := fs.String("probe", "", "probe this URL instead of serving")
	timeout := durationFlag{d: 2 * time.Second}
	fs.Var(&timeout, "timeout", "probe timeout")
	logf := addLogFlags(fs, "info")
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if *probe != "" {
		return demobackend.Probe(ctx, *probe, timeout.d)
	}
	logger, err := logf.logger(stderr)
	if err != nil {
		return err
	}
	logger = logger.With("component", "backend")
	return demobackend.New(*name, logger).ListenAndServe(ctx, *listen)
}
