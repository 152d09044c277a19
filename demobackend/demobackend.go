// Package demobackend is the HTTP server behind `certplane backend`: the
// backends of `certplane demo` and of testenv, and a test double for every
// test that needs an upstream. It tells who answered and shows what it
// received, so a test can assert round robin and client-certificate headers.
//
// Routes:
//
//	GET  /healthz        200 "ok\n" (503 "failing\n" after POST /healthz/fail)
//	POST /healthz/fail   make /healthz answer 503 (to drive health checks)
//	POST /healthz/ok     make /healthz answer 200 again
//	GET  /headers        JSON Echo of the request (headers, TLS, remote address)
//	any  /...            200 "<name>\n"; header X-Backend: <name>; a browser's GET
//	                     (Accept: text/html) gets it as a page with an inline
//	                     empty icon, so it fetches no /favicon.ico
package demobackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Echo is the JSON body of GET /headers.
type Echo struct {
	Backend    string              `json:"backend"`
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Host       string              `json:"host"`
	Proto      string              `json:"proto"`
	RemoteAddr string              `json:"remote_addr"`
	TLS        bool                `json:"tls"`
	Headers    map[string][]string `json:"headers"` // canonical names, as received
}

// Server answers as one named backend.
type Server struct {
	name    string
	logger  *slog.Logger
	failing atomic.Bool
	mux     *http.ServeMux
}

// New returns a backend answering as name. A nil logger discards logs.
func New(name string, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{name: name, logger: logger, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("POST /healthz/fail", func(w http.ResponseWriter, _ *http.Request) { s.setFailing(w, true) })
	s.mux.HandleFunc("POST /healthz/ok", func(w http.ResponseWriter, _ *http.Request) { s.setFailing(w, false) })
	s.mux.HandleFunc("GET /headers", s.headers)
	s.mux.HandleFunc("/", s.root)
	return s
}

// ServeHTTP makes Server an http.Handler (for httptest).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend", s.name)
	s.logger.Debug("request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	s.mux.ServeHTTP(w, r)
}

func (s *Server) root(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
		// A browser: a page whose inline empty icon stops the browser from
		// fetching /favicon.ico, a request that would take the next
		// round-robin turn, so every reload shows the other backend as the
		// cloud guides' browser test expects.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		name := html.EscapeString(s.name)
		_, _ = io.WriteString(w, `<!doctype html><meta charset="utf-8"><title>`+name+`</title><link rel="icon" href="data:,"><pre>`+name+"\n</pre>\n")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, s.name+"\n")
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.failing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "failing\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

func (s *Server) setFailing(w http.ResponseWriter, failing bool) {
	s.failing.Store(failing)
	s.logger.Info("health changed", "failing", failing)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintf(w, "failing=%v\n", failing)
}

func (s *Server) headers(w http.ResponseWriter, r *http.Request) {
	e := Echo{
		Backend: s.name, Method: r.Method, Path: r.URL.Path, Host: r.Host, Proto: r.Proto,
		RemoteAddr: r.RemoteAddr, TLS: r.TLS != nil, Headers: map[string][]string(r.Header),
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(e)
}

// Serve answers on ln until ctx is cancelled, then shuts down gracefully
// (in-flight requests get up to five seconds) and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.logger.Info("backend listening", "name", s.name, "address", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("backend %q on %s: %w", s.name, ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	s.logger.Info("backend stopped", "name", s.name)
	return err
}

// ListenAndServe listens on addr and serves until ctx is cancelled.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("backend %q: %w", s.name, err)
	}
	return s.Serve(ctx, ln)
}

// Probe GETs url and returns nil on a 2xx answer within timeout. It is the
// health check of scratch container images, which have no shell or curl.
func Probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe %s: status %s", url, resp.Status)
	}
	return nil
}
