// Package admin is certplane's operator HTTP endpoint, shared by `certplane
// serve` and `certplane proxy`: / (the status page: HTML rendering /status,
// refreshing itself), /healthz (the process answers), /readyz (a
// first valid configuration is being served), /status (JSON: what is served,
// what is wrong and who is connected) and /metrics (Prometheus, from a
// registry of the caller's, never the global one).
//
// It serves read-only information and never key material, but the status
// names files and clients: keep it on loopback (the default) or behind
// something that authenticates.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/certplane/certplane/internal/buildinfo"
	"github.com/certplane/certplane/status"
)

// DefaultAddress is loopback: the status names files and clients.
const DefaultAddress = "127.0.0.1:18001"

// Options configures the handler. Every field is optional.
type Options struct {
	// Status returns the /status document, typically a Status value. It is
	// called per request and must be safe for concurrent use.
	Status func() any
	// Ready reports readiness for /readyz; nil means never ready.
	Ready func() bool
	// Registry backs /metrics; nil serves an empty registry.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Pprof serves net/http/pprof under /debug/pprof/. Profiles expose
	// memory contents (heap) and cost CPU: the caller checks that the
	// endpoint is on loopback (LoopbackOnly).
	Pprof bool
}

// Handler returns the admin mux.
func Handler(o Options) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		plain(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready != nil && o.Ready() {
			plain(w, http.StatusOK, "ready\n")
			return
		}
		plain(w, http.StatusServiceUnavailable, "not ready: no valid configuration served yet\n")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		var doc any = status.Status{}
		if o.Status != nil {
			doc = o.Status()
		}
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			log.Error("encode status", "err", err)
			plain(w, http.StatusInternalServerError, "cannot encode status\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(append(b, '\n'))
	})
	if pg, err := newPage(o.Status, log); err != nil {
		log.Error("status page unavailable", "err", err)
	} else {
		mux.HandleFunc("GET /{$}", pg.serveIndex)
		mux.Handle("GET /assets/", pg.assetHandler())
	}
	if o.Pprof {
		mountPprof(mux)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return mux
}

func plain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = fmt.Fprint(w, body)
}

// NewRegistry returns a registry with the Go runtime and process collectors
// and certplane_build_info, for a caller that has none of its own yet.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Collector())
	return reg
}

// Serve serves h on lis until ctx is done, then shuts down within a second.
func Serve(ctx context.Context, lis net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server: %w", err)
	}
	return nil
}
