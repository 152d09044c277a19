package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	sotw "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/watcher"
)

// Options configures a ControlPlane.
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
	// ExpiryWarning is how close to expiry a served certificate or CRL
	// nextUpdate is logged and flagged (certplane_expiring_soon); zero
	// means admin.DefaultExpiryWarning (30 days).
	ExpiryWarning time.Duration
}

// ControlPlane is `certplane serve` as a library: it watches the
// directories, loads and validates them, and serves the result over ADS. The
// proxy's standalone mode embeds one and connects to it over a private unix
// socket.
type ControlPlane struct {
	opts    Options
	log     *slog.Logger
	cache   cache.SnapshotCache
	pub     *Publisher
	tracker *tracker
	metrics *metrics
	xds     server.Server
	watch   *watcher.Watcher
	expiry  *admin.ExpiryWatch

	// ctx bounds the xDS server's streams: Run's context once Run starts.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	problems map[string]string // last logged problems, to log changes only
	loaded   chan struct{}     // closed after the first reload
}

// NewControlPlane builds a control plane and starts watching the
// directories; call Run to load and publish.
func NewControlPlane(o Options) (*ControlPlane, error) {
	if o.CertsDir == "" || o.ConfigDir == "" {
		return nil, errors.New("control plane: both the certs and the config directory are required")
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
		load := config.Loader{Trust: mem, MaxTrustStoreSize: o.MaxTrustStoreSize, AdminAddresses: o.AdminAddresses}.Load
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
	w, err := watcher.New(watcher.Options{
		Dirs:     []string{o.CertsDir, o.ConfigDir},
		HoldOff:  o.HoldOff,
		MaxDelay: o.MaxDelay,
		Resync:   o.Resync,
		Logger:   o.Logger.With("component", "watcher"),
	})
	if err != nil {
		return nil, err
	}
	log := o.Logger.With("component", "xds")
	c := cache.NewSnapshotCache(true, nodeHash{only: o.NodeID}, controlPlaneLogger(log))
	pub := NewPublisher(c, o.NodeID)
	m, err := newMetrics(o.Registry, pub)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("control plane metrics: %w", err)
	}
	expiry := admin.NewExpiryWatch(o.ExpiryWarning, log.With("check", "expiry"))
	if err := o.Registry.Register(expiringCollector{p: pub, threshold: expiry.Threshold()}); err != nil {
		w.Close()
		return nil, fmt.Errorf("control plane metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp := &ControlPlane{
		expiry: expiry,
		opts:   o, log: log, cache: c, pub: pub, metrics: m, watch: w,
		tracker:  newTracker(o.NodeID, log, m),
		ctx:      ctx,
		cancel:   cancel,
		problems: map[string]string{},
		loaded:   make(chan struct{}),
	}
	cp.tracker.bind = o.BindNodeID
	cp.xds = server.NewServer(ctx, c, cp.tracker.callbacks(), sotw.WithOrderedADS(), sotw.WithLogger(controlPlaneLogger(log)))
	return cp, nil
}

// Run loads and publishes once, then again on every change the watcher
// signals, until ctx is done. It then ends every xDS stream.
func (cp *ControlPlane) Run(ctx context.Context) error {
	defer cp.cancel()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() { defer close(done); cp.watch.Run(wctx) }()
	defer func() { stop(); <-done }()

	cp.Reload(ctx)
	close(cp.loaded)
	expiryTick := time.NewTicker(admin.ExpiryCheckEvery)
	defer expiryTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-expiryTick.C:
			cp.checkExpiry()
		case _, ok := <-cp.watch.C():
			if !ok {
				return errors.New("control plane: watcher stopped")
			}
			cp.Reload(ctx)
		}
	}
}

// Loaded is closed once Run has completed its first reload.
func (cp *ControlPlane) Loaded() <-chan struct{} { return cp.loaded }

// Reload reads both directories and publishes what is valid. Run calls it;
// it is exported for callers that know a change happened (SIGHUP).
func (cp *ControlPlane) Reload(ctx context.Context) (Result, error) {
	start := time.Now()
	m, err := cp.opts.Load(cp.opts.CertsDir, cp.opts.ConfigDir)
	if err != nil {
		cp.log.Error("reload failed: cannot read the directories; still serving the last good snapshot", "err", err)
		cp.metrics.reload(Result{}, 1, err)
		return Result{}, err
	}
	res, err := cp.pub.Update(ctx, m)
	cp.metrics.reload(res, len(m.Problems), err)
	cp.logProblems(m, res)
	cp.checkExpiry()
	releaseMemory(m)
	attrs := []any{
		"pushed", res.Pushed,
		"duration", time.Since(start).Round(time.Microsecond).String(),
		"listeners", len(res.Serving),
		"problems", len(m.Problems) + len(res.Errors),
	}
	if len(res.LastGood) > 0 {
		attrs = append(attrs, "last_good", res.LastGood)
	}
	versions := []any{}
	for _, t := range servedTypes {
		if n, ours := shortNames[t]; ours {
			versions = append(versions, n, res.Versions[t])
		}
	}
	attrs = append(attrs, slog.Group("versions", versions...))
	if len(res.Changed) > 0 {
		changed := make([]string, 0, len(res.Changed))
		for _, t := range res.Changed {
			if _, ours := shortNames[t]; ours {
				changed = append(changed, TypeName(t))
			}
		}
		attrs = append(attrs, "changed", changed)
	}
	if err != nil {
		cp.log.Error("reload: snapshot not published; still serving the last good one", append(attrs, "err", err)...)
		return res, err
	}
	if res.Pushed {
		cp.log.Info("reload: published", attrs...)
	} else {
		cp.log.Debug("reload: no change", attrs...)
	}
	return res, nil
}

// logProblems logs each problem when it appears or changes, and says when
// it is gone: a periodic resync must not repeat the same lines forever.
func (cp *ControlPlane) logProblems(m *config.Model, res Result) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
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
		reason := problemOf(pr, false).Reason
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
		reason := problemOf(pr, false).Reason
		now[key] = reason
		entries = append(entries, entry{key, []any{"file", pr.File, "warning", reason}, true})
	}
	for _, e := range res.Errors {
		key := "listener:" + e.Listener
		now[key] = e.Err.Error()
		entries = append(entries, entry{key, []any{"file", e.File, "listener", e.Listener, "last_good_served", lastGood[e.Listener], "err", e.Err.Error()}, false})
	}
	for _, e := range entries {
		if cp.problems[e.key] == now[e.key] {
			continue
		}
		if e.warn {
			cp.log.Warn("warning", e.attrs...)
		} else {
			cp.log.Error("problem", e.attrs...)
		}
	}
	gone := []string{}
	for k := range cp.problems {
		if _, still := now[k]; !still {
			gone = append(gone, k)
		}
	}
	slices.Sort(gone)
	for _, k := range gone {
		cp.log.Info("problem resolved", "was", cp.problems[k], "where", k)
	}
	cp.problems = now
}

// GRPCServer returns a gRPC server with the aggregated discovery service and,
// for clients that do not use ADS, the per-type services, using creds.
func (cp *ControlPlane) GRPCServer(creds credentials.TransportCredentials) *grpc.Server {
	return NewGRPCServer(cp.xds, creds)
}

// NewGRPCServer registers srv's discovery services on a new gRPC server.
func NewGRPCServer(srv server.Server, creds credentials.TransportCredentials) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(1000),
		// Envoy keeps one ADS stream open for its lifetime; let it ping, and
		// notice dead peers so their status does not linger.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	g := grpc.NewServer(opts...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, srv)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, srv)
	routeservice.RegisterRouteDiscoveryServiceServer(g, srv)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, srv)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, srv)
	secretservice.RegisterSecretDiscoveryServiceServer(g, srv)
	return g
}

// Serve serves xDS on lis until ctx is done or Run returns.
func (cp *ControlPlane) Serve(ctx context.Context, lis net.Listener, creds credentials.TransportCredentials) error {
	g := cp.GRPCServer(creds)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("xds server: %w", err)
	case <-ctx.Done():
	case <-cp.ctx.Done():
	}
	// ADS streams never end on their own, so a graceful stop would wait
	// forever: stop, which ends them, and clients reconnect elsewhere.
	g.Stop()
	<-errc
	return nil
}

// Ready reports whether a first valid snapshot is being served.
func (cp *ControlPlane) Ready() bool { return cp.pub.Ready() }

// Publisher returns the control plane's publisher.
func (cp *ControlPlane) Publisher() *Publisher { return cp.pub }

// Status is the control plane's /status section.
func (cp *ControlPlane) Status() *admin.ControlPlane {
	st := cp.pub.status()
	st.Nodes = cp.tracker.nodes()
	cp.expiryStatus(st, time.Now())
	return st
}
