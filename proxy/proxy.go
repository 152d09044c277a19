// Package proxy is certplane's fallback data plane: an HTTPS reverse proxy
// with mutual TLS, fed by the very xDS resources Envoy gets. It knows only
// xDS resources (docs/resources.md), honours exactly the fields listed
// there, and NACKs any resource that sets another field.
//
// Every update builds one immutable state (listeners, filter chains with
// their certificates and verifiers, routes, clusters) that is swapped
// atomically. The state is built once, as the xDS client prepares the
// response (a build error NACKs it), and that candidate is what the commit
// serves. Sockets, connections and health checkers are reconciled
// against it: listeners are bound, rebound or drained; open connections
// are rechecked when their verifier changes (a CRL revokes a live client).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/certplane/certplane/proxy/mtls"
	"github.com/certplane/certplane/status"
	"github.com/certplane/certplane/xds/client"
)

// Options configures a Proxy. Zero values are usable.
type Options struct {
	// Logger receives operational logs (listener started, xDS problems).
	Logger *slog.Logger
	// ConnLog receives the connection and request log: one JSON line per
	// handshake and per request. Use a JSON handler.
	ConnLog *slog.Logger
	// ConnLogOut, when set, is the writer under ConnLog's JSON handler
	// (default handler options). Request lines, the bulk of the log, are
	// then encoded by the proxy straight to it: the same bytes that
	// handler writes, without slog's per-attribute work.
	ConnLogOut io.Writer
	// Registry receives the proxy's metrics; nil makes a private one.
	Registry *prometheus.Registry
	// DrainTimeout bounds a graceful drain (listener removed, shutdown).
	// Default 30s.
	DrainTimeout time.Duration
	// FailureLogWindow rate-limits identical handshake failure lines per
	// (listener, reason, client IP). Default 10s; negative disables.
	FailureLogWindow time.Duration
	// MTLS is passed to every mtls.NewVerifier.
	MTLS mtls.Options
	// ExpiryWarning is how close to expiry a received certificate or CRL
	// nextUpdate is flagged (status, certplane_proxy_expiring_soon) and
	// logged; zero means status.DefaultExpiryWarning (30 days).
	ExpiryWarning time.Duration
	// NoRequestLog turns the per-request lines of the connection log off
	// (handshake and recheck lines stay); requests are still counted.
	NoRequestLog bool
	// QuietExpiry turns the expiry log lines off, when a control plane in
	// the same process already logs them with their files.
	QuietExpiry bool
}

// Proxy is the fallback data plane.
type Proxy struct {
	opts    Options
	log     *slog.Logger
	connLog *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	ocsp    *ocspState // client_auth.ocsp (ocsp.go)
	limiter *failureLimiter
	// rps holds one ReverseProxy per copy buffer size in use (see
	// reverseProxy).
	rps         sync.Map
	mtlsOptions mtls.Options
	// tickets holds each filter chain's session ticket keys (tickets.go).
	tickets ticketKeys

	state atomic.Pointer[state]
	// updatedCh is closed and replaced by every commit (see Updated).
	updatedCh atomic.Pointer[chan struct{}]
	// builds counts the states built, so tests can check that a commit
	// serves its prepared candidate instead of building the state again.
	builds atomic.Uint64
	// status is what /status shows, rebuilt on every update.
	status    atomic.Pointer[Status]
	connected atomic.Bool
	updated   atomic.Bool
	live      atomic.Pointer[map[string]*listenerRuntime]

	// mu serialises updates and guards the runtime maps below.
	mu        sync.Mutex
	closed    bool
	listeners map[string]*listenerRuntime
	runtimes  map[string]*clusterRuntime
	bindErrs  map[string]string

	bg sync.WaitGroup // drains in flight

	handshakes handshakeRing       // the last hour of handshake results
	expiry     *status.ExpiryWatch // logs threshold crossings
}

// New makes a proxy that serves nothing until its first update.
func New(opts Options) *Proxy {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.ConnLog == nil {
		opts.ConnLog = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.FailureLogWindow == 0 {
		opts.FailureLogWindow = 10 * time.Second
	}
	p := &Proxy{
		opts: opts, log: opts.Logger, connLog: opts.ConnLog, reg: opts.Registry,
		limiter: newFailureLimiter(opts.FailureLogWindow), mtlsOptions: opts.MTLS,
		listeners: map[string]*listenerRuntime{}, runtimes: map[string]*clusterRuntime{}, bindErrs: map[string]string{},
	}
	p.state.Store(emptyState())
	updated := make(chan struct{})
	p.updatedCh.Store(&updated)
	p.status.Store(&Status{})
	live := map[string]*listenerRuntime{}
	p.live.Store(&live)
	p.metrics = newMetrics(p.reg, p)
	p.ocsp = newOCSPState(p.reg, opts.MTLS.Now, p.log)
	expiryLog := p.log.With("check", "expiry")
	if opts.QuietExpiry {
		expiryLog = slog.New(slog.DiscardHandler)
	}
	p.expiry = status.NewExpiryWatch(opts.ExpiryWarning, expiryLog)
	p.reg.MustRegister(expiringCollector{p})
	return p
}

// Registry is the proxy's metrics registry.
func (p *Proxy) Registry() *prometheus.Registry { return p.reg }

// ClientConfig completes an xDS client configuration with the proxy's
// Prepare and callbacks.
func (p *Proxy) ClientConfig(cfg client.Config) client.Config {
	cfg.Prepare = p.Prepare
	cfg.ReleaseSecrets = true // parsed Secrets are recognised by digest
	cfg.OnConnState = p.setConnected
	if cfg.Logger == nil {
		cfg.Logger = p.log.With("component", "xds-client")
	}
	return cfg
}

// Run runs the xDS client and serves until ctx ends, then drains every
// listener gracefully (bounded by DrainTimeout) and returns.
func (p *Proxy) Run(ctx context.Context, cfg client.Config) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- client.Run(cctx, p.ClientConfig(cfg)) }()
	go p.watchExpiry(cctx)
	sweep := time.NewTicker(max(p.opts.FailureLogWindow, time.Second))
	defer sweep.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			errc = nil
			if err != nil && !errors.Is(err, context.Canceled) {
				runErr = err // already says "xds client: ..."
				break loop
			}
		case now := <-sweep.C:
			p.limiter.sweep(now, func(k limitKey, n int) {
				p.connLog.Info("handshake failures suppressed", "event", "handshake", "listener", k.listener,
					"client_ip", k.ip, "result", "fail", keyTransportFailure, k.reason, "suppressed", n)
			})
		}
	}
	cancel()
	if errc != nil {
		<-errc
	}
	dctx, dcancel := context.WithTimeout(context.Background(), p.opts.DrainTimeout+time.Second)
	defer dcancel()
	if err := p.Shutdown(dctx); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

func (p *Proxy) setConnected(up bool) {
	p.connected.Store(up)
	if up {
		p.metrics.xdsConnected.Set(1)
	} else {
		p.metrics.xdsConnected.Set(0)
	}
	p.log.Info("xds connection state", "connected", up)
}

// Updated returns a channel that the next commit of a state closes: an
// accepted xDS update, or the rebuild that starts the listeners a warmed
// cluster held back. Take it before the action whose effect to wait for;
// the state and Status are already those of the commit when it closes.
func (p *Proxy) Updated() <-chan struct{} { return *p.updatedCh.Load() }

// Prepare is the xDS client's client.Config.Prepare. It refuses (NACKs)
// what Validate refuses, with the same error; otherwise it builds the
// candidate state from the view the change yields, once, and returns the
// commit that serves that very candidate. A refused candidate is dropped:
// building it changed nothing (see commitRuntimes).
func (p *Proxy) Prepare(ch client.Change) (commit func(), err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return func() {}, nil
	}
	cur := p.state.Load()
	parsed, err := p.check(ch.Resources, cur, false)
	if err != nil {
		// Refused anyway: check again in full so that error_detail lists
		// every defect, in Validate's words and order.
		_, err = p.check(ch.Resources, cur, true)
		return nil, err
	}
	c := p.prepare(ch.View, cur, parsed)
	if err := builtErrors(ch.Resources, c); err != nil {
		return nil, err
	}
	return func() { p.commit(c) }, nil
}

// Update builds the next state from res and commits it, as an accepted
// update does; for callers without an xDS client (tests, fuzzers).
func (p *Proxy) Update(res client.Resources) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.commitLocked(p.prepare(res, p.state.Load(), nil))
}

// candidate is a state built from one set of resources, not yet served.
type candidate struct {
	prev, next *state
	// problems are the resources that kept a previous version (logged and
	// shown on /status at commit).
	problems    map[string]string
	parsedBytes int
}

// prepare builds the candidate state for res on top of prev, reusing the
// Secrets that check already parsed (by message identity), so that a
// 1,000,000-serial CRL is parsed once per update. p.mu is held: the build
// reads the cluster runtimes, which only a commit changes.
func (p *Proxy) prepare(res client.Resources, prev *state, parsed map[*tlsv3.Secret]*secret) *candidate {
	p.builds.Add(1)
	b := &builder{prev: prev, runtimes: p.runtimes, mtlsOptions: p.mtlsOptions, validated: parsed}
	next := b.build(res)
	return &candidate{prev: prev, next: next, problems: b.problems, parsedBytes: b.parsedBytes}
}

// parsedSecrets gives the Secrets the candidate parsed, by message
// identity, so that building it again does not parse them again.
func (c *candidate) parsedSecrets() map[*tlsv3.Secret]*secret {
	out := map[*tlsv3.Secret]*secret{}
	for name, m := range c.next.res.Secrets {
		if _, failed := c.problems["secret/"+name]; !failed && c.next.secrets[name] != nil {
			out[m] = c.next.secrets[name]
		}
	}
	return out
}

func (p *Proxy) commit(c *candidate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.commitLocked(c)
}

// clusterWarmed rebuilds the state once a cluster's first health-check
// round has finished, so that the listeners waiting for it start. It is
// called from a checker goroutine, which the rebuild may stop: it runs on
// its own goroutine (Shutdown waits for it through bg; checkers stop
// before that wait).
func (p *Proxy) clusterWarmed(cluster string) {
	p.log.Info("cluster warm: first health check round done", "cluster", cluster)
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		p.mu.Lock()
		defer p.mu.Unlock()
		if st := p.state.Load(); !p.closed && len(st.warming) > 0 {
			p.commitLocked(p.prepare(st.res, st, nil))
		}
	}()
}

// commitLocked publishes a candidate and reconciles sockets, health
// checkers and open connections with it. A candidate built on a state that
// is no longer current (a warmed cluster's rebuild committed in between) is
// built again on the current one: committing it would undo that rebuild and
// leave its listeners warming for good. p.mu is held.
func (p *Proxy) commitLocked(c *candidate) {
	if cur := p.state.Load(); c.prev != cur {
		c = p.prepare(c.next.res, cur, c.parsedSecrets())
	}
	prev, next := c.prev, c.next
	next.res = releaseSecrets(next.res, c.problems)
	p.commitRuntimes(next)
	p.state.Store(next)
	retireTransports(prev, next)
	p.reconcileClusters(next)
	p.reconcileListeners(next)
	p.recheck(next)
	p.updated.Store(true)
	for _, k := range sortedKeys(c.problems) {
		p.log.Error("resource not applied, previous version kept", "resource", k, "error", c.problems[k])
	}
	for _, k := range sortedKeys(next.warming) {
		p.log.Info("listener warming", "listener", k, "waiting_for", next.warming[k])
	}
	if c.parsedBytes > largeSecretBytes {
		// Parsing a CRL of 1,000,000 serials leaves about 1 GB of garbage
		// (the Secret's PEM, its DER, x509's entries) that the runtime's
		// background scavenger would hand back to the OS over minutes:
		// return it now, once per large update, before the status says
		// the update is served. Handshakes do not wait: they read state.
		debug.FreeOSMemory()
	}
	p.status.Store(p.buildStatus(next, c.problems))
	p.checkExpiry(time.Now())
	updated := make(chan struct{})
	close(*p.updatedCh.Swap(&updated))
}

// largeSecretBytes is the wire size of newly parsed Secrets above which an
// update returns its garbage to the OS at once.
const largeSecretBytes = 8 << 20

// retireTransports retires the upstream transports of prev that next no
// longer uses (a cluster or one of its secrets changed, or the cluster is
// gone), once next is published so that no new request picks them.
func retireTransports(prev, next *state) {
	inUse := make(map[*upstreamTransport]bool, len(next.clusters))
	for _, c := range next.clusters {
		inUse[c.transport] = true
	}
	for _, c := range prev.clusters {
		if !inUse[c.transport] {
			c.transport.retire()
		}
	}
}

// reconcileClusters starts, restarts and stops health checkers, and drops
// the runtimes of removed clusters.
func (p *Proxy) reconcileClusters(st *state) {
	for name, rt := range p.runtimes {
		if _, ok := st.clusters[name]; !ok {
			if rt.checker != nil {
				rt.checker.stop()
			}
			delete(p.runtimes, name)
		}
	}
	for name, cs := range st.clusters {
		rt := cs.rt
		key := ""
		if cs.hc != nil {
			key = cs.hc.key() + "|" + cs.transportKey
			for _, h := range cs.hosts {
				key += "|" + h.addr
			}
		}
		if key == rt.hcKey {
			continue
		}
		if rt.checker != nil {
			rt.checker.stop()
			rt.checker = nil
		}
		switch {
		case cs.hc == nil:
			for _, h := range cs.hosts {
				h.healthy.Store(true)
			}
		case rt.hcKey == "":
			// Health checking starts now: every host starts unhealthy and
			// the cluster warms until each has had a first check.
			for _, h := range cs.hosts {
				h.healthy.Store(false)
				h.checked.Store(false)
				h.probed.Store(false)
			}
			rt.warm.Store(len(cs.hosts) == 0)
		}
		if cs.hc != nil {
			if len(cs.hosts) == 0 {
				rt.warm.Store(true) // Envoy: no host, nothing to check
			}
			rt.checker = startHealthChecker(name, cs.hc, cs.hosts, cs.scheme, cs.transport, rt, hcDeps{log: p.log, warmed: p.clusterWarmed})
		}
		rt.hcKey = key
	}
}

// reconcileListeners binds new listeners, rebinds moved ones, swaps the HTTP
// server of those whose server-level settings changed, and drains removed
// ones.
func (p *Proxy) reconcileListeners(st *state) {
	for name, lr := range p.listeners {
		ls := st.listeners[name]
		if ls == nil || ls.address != lr.addr {
			lr.stop()
			delete(p.listeners, name)
		}
	}
	for name, ls := range st.listeners {
		lr := p.listeners[name]
		if lr == nil {
			var err error
			if lr, err = p.startListener(ls); err != nil {
				p.bindErrs[name] = err.Error()
				p.log.Error("listener cannot bind", "listener", name, "address", ls.address, "error", err)
				continue
			}
			delete(p.bindErrs, name)
			p.listeners[name] = lr
			continue
		}
		if lr.settings != ls.server {
			lr.newGen(ls.server)
		}
	}
	for name := range p.bindErrs {
		if st.listeners[name] == nil {
			delete(p.bindErrs, name)
		}
	}
	live := make(map[string]*listenerRuntime, len(p.listeners))
	for k, v := range p.listeners {
		live[k] = v
	}
	p.live.Store(&live)
}

// Shutdown stops accepting on every listener, drains open connections
// within ctx, and stops health checks. The proxy accepts no update after.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for name, lr := range p.listeners {
			lr.stop()
			delete(p.listeners, name)
		}
		for _, rt := range p.runtimes {
			if rt.checker != nil {
				rt.checker.stop()
				rt.checker = nil
			}
		}
		empty := map[string]*listenerRuntime{}
		p.live.Store(&empty)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain: %w", ctx.Err())
	}
}

// ListenerAddr is the bound address of a listener, or nil when it is not
// serving (useful with port 0).
func (p *Proxy) ListenerAddr(name string) net.Addr {
	lr := (*p.live.Load())[name]
	if lr == nil {
		return nil
	}
	return lr.ln.Addr()
}

func (p *Proxy) connCounts() map[string]int {
	out := map[string]int{}
	for name, lr := range *p.live.Load() {
		out[name] = lr.openConns()
	}
	return out
}
