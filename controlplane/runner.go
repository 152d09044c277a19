// Package controlplane is `certplane serve` as a library: the runner that
// owns the reload loop. It watches the certificate and config directories,
// loads them into a config.Model, and publishes what is valid through an
// xds.Server; one goroutine serializes file events, the periodic resync and
// explicit reloads (SIGHUP), so an older model is never published after a
// newer one. The watcher is opened in Run and closed when Run returns.
//
// The proxy's standalone mode embeds a Runner and connects to it over a
// private unix socket, as a remote proxy would over TCP.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/credentials"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/crlfetch"
	"github.com/certplane/certplane/status"
	"github.com/certplane/certplane/watcher"
	"github.com/certplane/certplane/xds"
)

// Options configures a Runner.
type Options struct {
	CertsDir, ConfigDir string
	// NodeID, when set, serves only the node with this ID; by default every
	// node gets the same snapshot.
	NodeID string
	// BindNodeID refuses a stream whose node id is not one of its client
	// certificate's NodeIdentities (xDS mTLS).
	BindNodeID bool
	// HoldOff, MaxDelay and Resync tune the directory watcher (zero: its
	// defaults, 50 ms, 500 ms and 30 s).
	HoldOff, MaxDelay, Resync time.Duration
	// Registry receives the control plane's metrics; nil makes a private one.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Load reads the directories; nil means a config.Loader that remembers
	// trust material between reloads (config.TrustMemory), with StateDir
	// and MaxTrustStoreSize.
	Load func(certsDir, configDir string) (*config.Model, error)
	// StateDir, when set, keeps the newest CRL of each CA across restarts
	// (see config.NewTrustMemory); used only when Load is nil.
	StateDir string
	// MaxTrustStoreSize bounds one trust store's files (zero: the config
	// default); used only when Load is nil.
	MaxTrustStoreSize int64
	// AdminAddresses are the admin endpoints of the data plane: a backend
	// on one is a warning (config/loops.go); used only when Load is nil.
	AdminAddresses []string
	// Warnings, when set, adds warnings to every loaded model (serve's
	// shared xDS client CA check); used only when Load is nil.
	Warnings func(*config.Model) []config.Problem
	// PaceMemory sets a soft memory limit while the trust material is
	// large (see pacer): for serve, whose push copies it once. Off in a
	// process that also decodes what it serves (proxy standalone), whose
	// pushes hold several copies.
	PaceMemory bool
	// ExpiryWarning is how close to expiry a served certificate or CRL
	// nextUpdate is logged and flagged (certplane_expiring_soon); zero
	// means status.DefaultExpiryWarning (30 days).
	ExpiryWarning time.Duration
	// ProxyOnly: only certplane proxies consume what is served (standalone
	// proxy, serve --data-plane proxy); see config.Loader.ProxyOnly. Used
	// only when Load is nil.
	ProxyOnly bool
	// Fetch tunes the CRL fetcher of trust_stores[].crl_fetch (tests: a
	// fake clock, no jitter). It writes under StateDir.
	Fetch FetchOptions
}

// FetchOptions are the test hooks of the CRL fetcher.
type FetchOptions struct {
	Clock  crlfetch.Clock
	Jitter func(time.Duration) time.Duration
	// Now, when set, is also the loader's clock (used only when Load is
	// nil), so that a test moves both past a CRL's nextUpdate.
	Now func() time.Time
}

// Runner watches, loads, validates, translates and publishes, in one loop.
type Runner struct {
	opts    Options
	log     *slog.Logger
	xds     *xds.Server
	pub     *xds.Publisher
	metrics *metrics
	expiry  *status.ExpiryWatch
	fetch   *crlfetch.Fetcher // trust_stores[].crl_fetch; runs beside the loop, reloads through it

	// requests carries explicit reloads into the loop; hup is a pending
	// Reload, coalesced (a second SIGHUP before the first is served adds
	// nothing).
	requests chan chan reloaded
	hup      chan struct{}
	started  atomic.Bool
	loaded   chan struct{} // closed after the first reload
	done     chan struct{} // closed when Run returns

	problems map[string]string // last logged problems; the loop's alone
	// releaseDue is set by a reload whose push leaves large garbage; the loop's alone.
	releaseDue bool
	// trust is the last reload's trust material size; the loop's alone,
	// as is pacer.
	trust int
	pacer *pacer

	mu      sync.Mutex
	updated chan struct{} // closed, and replaced, after every reload
}

// reloaded is the answer to an explicit reload request.
type reloaded struct {
	res xds.Result
	err error
}

// New builds a Runner. It opens nothing and starts no goroutine: Run does.
func New(o Options) (*Runner, error) {
	if o.CertsDir == "" || o.ConfigDir == "" {
		return nil, errors.New("control plane: both the certs and the config directory are required")
	}
	// Run opens the watcher; a missing directory is still an error of New,
	// so that a command fails before it serves anything.
	if err := watcher.CheckDirs([]string{o.CertsDir, o.ConfigDir}); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Load == nil {
		mem, err := config.NewTrustMemory(o.StateDir, false)
		if err != nil {
			return nil, fmt.Errorf("control plane: %w", err)
		}
		ld := config.Loader{Trust: mem, MaxTrustStoreSize: o.MaxTrustStoreSize, AdminAddresses: o.AdminAddresses, ProxyOnly: o.ProxyOnly, Now: o.Fetch.Now}
		if o.StateDir != "" {
			ld.FetchedDir = config.FetchedCRLDir(o.StateDir)
		}
		load := ld.Load
		o.Load = load
		if warn := o.Warnings; warn != nil {
			o.Load = func(certsDir, configDir string) (*config.Model, error) {
				m, err := load(certsDir, configDir)
				if err == nil {
					m.Warnings = append(m.Warnings, warn(m)...)
				}
				return m, err
			}
		}
	}
	log := o.Logger.With("component", "xds")
	srv, err := xds.NewServer(xds.ServerOptions{NodeID: o.NodeID, BindNodeID: o.BindNodeID, Registry: o.Registry, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	copies := 0
	if o.PaceMemory {
		// A new copy of the largest CRL at most: a store's bundle is a rope
		// of its CRLs (a new CRL of one CA costs its own bytes), sent in
		// place (xds.lazyResource); a large CRL replaced is read anew.
		copies = 1
	}
	r := &Runner{
		opts: o, log: log, xds: srv, pub: srv.Publisher(), pacer: newPacer(copies),
		expiry:   status.NewExpiryWatch(o.ExpiryWarning, log.With("check", "expiry")),
		requests: make(chan chan reloaded),
		hup:      make(chan struct{}, 1),
		loaded:   make(chan struct{}),
		done:     make(chan struct{}),
		problems: map[string]string{},
		updated:  make(chan struct{}),
	}
	if r.metrics, err = newMetrics(o.Registry, r); err != nil {
		return nil, fmt.Errorf("control plane metrics: %w", err)
	}
	if r.fetch, err = newFetcher(o, r.Reload); err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	return r, nil
}

// Run watches the directories, loads and publishes once, then again on
// every change the watcher signals, every resync and every Reload, until
// ctx is done. The watcher lives exactly as long as Run; Serve stops when
// Run returns. Run may be called once.
func (r *Runner) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("control plane: Run called twice")
	}
	defer close(r.done)
	w, err := watcher.New(watcher.Options{
		Dirs:     []string{r.opts.CertsDir, r.opts.ConfigDir},
		HoldOff:  r.opts.HoldOff,
		MaxDelay: r.opts.MaxDelay,
		Resync:   r.opts.Resync,
		Logger:   r.opts.Logger.With("component", "watcher"),
	})
	if err != nil {
		return err
	}
	wctx, stop := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); w.Run(wctx) }()
	defer func() { stop(); <-watched; _ = w.Close() }()

	// release fires a while after a reload with large trust material and
	// hands the reload's garbage back to the OS (see releaseMemory); the
	// delay keeps that full GC off the path of the push to clients.
	var release <-chan time.Time
	reload := func(why string) (xds.Result, error) {
		res, err := r.reload(ctx, why)
		if r.releaseDue {
			r.releaseDue = false
			release = time.After(releaseDelay)
		}
		return res, err
	}
	fetched := make(chan struct{})
	go func() { defer close(fetched); r.fetch.Run(wctx) }()
	defer func() { stop(); <-fetched }()
	reload("start")
	if release != nil {
		// Nothing is being pushed yet: release the load's garbage now,
		// so that the pace is set from the first push on.
		release = nil
		r.release()
	}
	close(r.loaded)
	expiryTick := time.NewTicker(status.ExpiryCheckEvery)
	defer expiryTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-expiryTick.C:
			r.checkExpiry()
		case <-release:
			release = nil
			r.release()
		case _, ok := <-w.C():
			if !ok {
				return errors.New("control plane: watcher stopped")
			}
			reload("files")
		case <-r.hup:
			reload("requested")
		case reply := <-r.requests:
			res, err := reload("requested")
			reply <- reloaded{res, err}
		}
	}
}

// release returns a push's garbage to the OS and paces the heap from what
// is left.
func (r *Runner) release() {
	releaseMemory()
	r.pacer.released(r.trust)
}

// Reload asks Run's loop to reload, without waiting: for a caller that
// knows something changed (SIGHUP). Requests made while one is pending
// are merged into it.
func (r *Runner) Reload() {
	select {
	case r.hup <- struct{}{}:
	default:
	}
}

// ReloadWait has Run's loop reload now and returns what that reload did.
// It fails if ctx ends or Run returns first.
func (r *Runner) ReloadWait(ctx context.Context) (xds.Result, error) {
	reply := make(chan reloaded, 1)
	select {
	case r.requests <- reply:
	case <-ctx.Done():
		return xds.Result{}, ctx.Err()
	case <-r.done:
		return xds.Result{}, errors.New("control plane: not running")
	}
	got := <-reply
	return got.res, got.err
}

// Loaded is closed once Run has completed its first reload.
func (r *Runner) Loaded() <-chan struct{} { return r.loaded }

// Updated returns a channel closed when the next reload completes, whether
// or not it changed what is served. To wait for a condition, take the
// channel, check the condition, and wait on the channel if it does not
// hold yet: no reload can slip in between.
func (r *Runner) Updated() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.updated
}

func (r *Runner) notify() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.updated)
	r.updated = make(chan struct{})
}

// reload reads both directories and publishes what is valid. Only Run's
// goroutine calls it: that is what keeps publishes in load order.
func (r *Runner) reload(ctx context.Context, why string) (xds.Result, error) {
	defer r.notify()
	start := time.Now()
	m, err := r.opts.Load(r.opts.CertsDir, r.opts.ConfigDir)
	if err != nil {
		r.log.Error("reload failed: cannot read the directories; still serving the last good snapshot", "trigger", why, "err", err)
		r.metrics.reload(xds.Result{}, 1, err)
		return xds.Result{}, err
	}
	res, err := r.pub.Update(ctx, m)
	r.metrics.reload(res, len(m.Problems), err)
	r.configureFetch(m)
	r.logProblems(m, res)
	r.checkExpiry()
	r.trust = trustBytes(m)
	r.pacer.reloaded(r.trust)
	r.releaseDue = res.Pushed && r.trust > largeTrustBytes
	if r.releaseDue {
		collect()
	}
	attrs := []any{
		"trigger", why,
		"pushed", res.Pushed,
		"duration", time.Since(start).Round(time.Microsecond).String(),
		"listeners", len(res.Serving),
		"problems", len(m.Problems) + len(res.Errors),
	}
	if len(res.LastGood) > 0 {
		attrs = append(attrs, "last_good", res.LastGood)
	}
	versions := []any{}
	for _, t := range xds.EmittedTypes() {
		versions = append(versions, xds.TypeName(t), res.Versions[t])
	}
	attrs = append(attrs, slog.Group("versions", versions...))
	if len(res.Changed) > 0 {
		changed := make([]string, 0, len(res.Changed))
		for _, t := range res.Changed {
			if slices.Contains(xds.EmittedTypes(), t) {
				changed = append(changed, xds.TypeName(t))
			}
		}
		attrs = append(attrs, "changed", changed)
	}
	if err != nil {
		r.log.Error("reload: snapshot not published; still serving the last good one", append(attrs, "err", err)...)
		return res, err
	}
	if res.Pushed {
		r.log.Info("reload: published", attrs...)
	} else if why == "requested" {
		// An operator who sends SIGHUP wants to see that it was heard.
		r.log.Info("reload: no change", attrs...)
	} else {
		r.log.Debug("reload: no change", attrs...)
	}
	return res, nil
}

// logProblems logs each problem when it appears or changes, and says when
// it is gone: a periodic resync must not repeat the same lines forever.
func (r *Runner) logProblems(m *config.Model, res xds.Result) {
	lastGood := map[string]bool{}
	for _, n := range res.LastGood {
		lastGood[n] = true
	}
	now := map[string]string{}
	type entry struct {
		key   string
		attrs []any
		warn  bool
	}
	var entries []entry
	for _, pr := range m.Problems {
		key := fmt.Sprintf("%s:%d:%s", pr.File, pr.Line, pr.Listener)
		reason := reasonOf(pr)
		now[key] = reason
		attrs := []any{"file", pr.File, "err", reason}
		if pr.Line > 0 {
			attrs = append(attrs, "line", pr.Line)
		}
		if pr.Listener != "" {
			attrs = append(attrs, "listener", pr.Listener, "last_good_served", lastGood[pr.Listener])
		}
		entries = append(entries, entry{key, attrs, false})
	}
	for _, pr := range m.Warnings {
		key := fmt.Sprintf("warn:%s:%d:%s", pr.File, pr.Line, pr.Listener)
		reason := reasonOf(pr)
		now[key] = reason
		entries = append(entries, entry{key, []any{"file", pr.File, "warning", reason}, true})
	}
	for _, e := range res.Errors {
		key := "listener:" + e.Listener
		now[key] = e.Err.Error()
		entries = append(entries, entry{key, []any{"file", e.File, "listener", e.Listener, "last_good_served", lastGood[e.Listener], "err", e.Err.Error()}, false})
	}
	for _, e := range entries {
		if r.problems[e.key] == now[e.key] {
			continue
		}
		if e.warn {
			r.log.Warn("warning", e.attrs...)
		} else {
			r.log.Error("problem", e.attrs...)
		}
	}
	gone := []string{}
	for k := range r.problems {
		if _, still := now[k]; !still {
			gone = append(gone, k)
		}
	}
	slices.Sort(gone)
	for _, k := range gone {
		r.log.Info("problem resolved", "was", r.problems[k], "where", k)
	}
	r.problems = now
}

func reasonOf(pr config.Problem) string {
	if pr.Err == nil {
		return "unknown problem"
	}
	return pr.Err.Error()
}

// Serve serves xDS on lis until ctx is done or Run returns.
func (r *Runner) Serve(ctx context.Context, lis net.Listener, creds credentials.TransportCredentials) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return r.xds.Serve(ctx, lis, creds)
}

// Ready reports whether a first valid snapshot is being served.
func (r *Runner) Ready() bool { return r.pub.Ready() }

// Publisher returns the runner's publisher.
func (r *Runner) Publisher() *xds.Publisher { return r.pub }

// Served is what the last reload left served.
func (r *Runner) Served() *xds.Served { return r.pub.Served() }

// Status is the control plane's /status section, computed from what is
// served now, the nodes connected now, and the time.
func (r *Runner) Status() *status.ControlPlane {
	s := r.pub.Served()
	st := s.Status()
	st.Nodes = r.xds.Nodes()
	st.CRLFetch = r.fetch.Status()
	expiryStatus(st, status.Expiries(s.Inventory()), time.Now(), r.expiry.Threshold())
	return st
}
