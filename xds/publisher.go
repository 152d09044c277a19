package xds

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
)

// allNodes is the cache key of the one snapshot every node gets by default.
const allNodes = "*"

// nodeHash maps every node to one snapshot, or, when only is set, each node
// to its own ID so that only the named node finds a snapshot.
type nodeHash struct{ only string }

func (h nodeHash) ID(n *core.Node) string {
	if h.only == "" {
		return allNodes
	}
	return n.GetId()
}

// unit is one listener's resources as last accepted, with what /status says
// about them.
type unit struct {
	name   string
	source string // the config file that defined it, cleaned
	addr   string // host:port, to detect a clash with a fresh listener
	set    envoy.Set
	info   unitInfo
}

// Result says what one Update did.
type Result struct {
	// Pushed is true when the served snapshot changed.
	Pushed bool
	// Versions are the per-type versions now served (by type URL).
	Versions Versions
	// Changed lists the type URLs whose version changed, in ADS order.
	Changed []string
	// Serving lists the listeners served from current inputs.
	Serving []string
	// LastGood lists the listeners whose inputs are invalid and that are
	// still served from their last good version.
	LastGood []string
	// Errors are listener-level failures found by translation or
	// validation (config problems are in the model). Each such listener is
	// kept at its last good version, or not created if it never had one.
	Errors []ListenerError
}

// ListenerError is a failure to build one listener's resources.
type ListenerError struct {
	Listener string
	File     string
	Err      error
}

func (e ListenerError) Error() string { return e.Err.Error() }

// Publisher turns models into snapshots in a go-control-plane cache. Its
// methods are safe for concurrent use; Updates are serialised.
type Publisher struct {
	cache cache.SnapshotCache
	key   string // cache key the snapshot is set under
	now   func() time.Time
	// instance tells this control plane's loop tokens (envoy.LoopToken)
	// from those of another certplane in front of or behind it.
	instance string

	mu         sync.Mutex
	lastGood   map[string]*unit // what is served now, by listener
	cur        *built           // nil until the first publish
	model      *config.Model    // the last model seen
	errs       []ListenerError  // translation errors of the last Update
	publishErr error            // why the last Update published nothing, if it failed
	reloads    uint64
	lastReload time.Time
	lastPush   time.Time
}

// NewPublisher publishes into c under key: allNodes (the default) when every
// node shares one snapshot, else the one node ID served.
func NewPublisher(c cache.SnapshotCache, nodeID string) *Publisher {
	key := allNodes
	if nodeID != "" {
		key = nodeID
	}
	return &Publisher{cache: c, key: key, now: time.Now, instance: rand.Text(), lastGood: map[string]*unit{}}
}

// Update translates m and publishes the result if it differs from what is
// served. A listener named in m's problems, or defined by a config file that
// failed to parse, or whose resources fail translation or validation, keeps
// its last good resources while the others update; one that was never valid
// is not created; one removed from the config is removed. The merged
// snapshot is validated as a whole; if that fails nothing is published and
// the error says why.
func (p *Publisher) Update(ctx context.Context, m *config.Model) (Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reloads++
	p.lastReload = p.now()
	p.model = m

	blocked := map[string]bool{}
	brokenFiles := map[string]bool{}
	for _, pr := range m.Problems {
		if pr.Listener != "" {
			blocked[pr.Listener] = true
		} else if pr.File != "" {
			brokenFiles[filepath.Clean(pr.File)] = true
		}
	}

	fresh := map[string]*unit{}
	var errs []ListenerError
	// One translator and one hasher per update: units share their Secrets,
	// and each distinct resource is hashed once (see hasher).
	tr, h, ic := envoy.NewTranslator(m).WithInstance(p.instance), newHasher(), newInfoCache()
	for _, l := range m.Listeners {
		if blocked[l.Name] {
			continue // the model's contract says this cannot happen; be safe
		}
		u, err := p.accept(tr, h, ic, m, l)
		if err != nil {
			errs = append(errs, ListenerError{Listener: l.Name, File: l.SourceFile, Err: err})
			continue
		}
		fresh[l.Name] = u
	}
	failed := map[string]bool{}
	for _, e := range errs {
		failed[e.Listener] = true
	}

	// Keep the last good unit of each listener whose current inputs are bad.
	kept := map[string]*unit{}
	for name, u := range p.lastGood {
		if fresh[name] != nil {
			continue
		}
		_, redefined := m.Sources[name]
		if blocked[name] || failed[name] || (brokenFiles[u.source] && !redefined) {
			kept[name] = u
		}
	}
	// A fresh listener on the address of a kept one wins: the operator moved
	// the address on purpose, and serving both would make Envoy reject the
	// whole listener update.
	for name, u := range kept {
		for _, f := range fresh {
			if u.addr != "" && u.addr == f.addr {
				delete(kept, name)
				errs = append(errs, ListenerError{Listener: name, File: u.source, Err: fmt.Errorf(
					"listener %s: last good version withdrawn: its address %s is now used by listener %s", name, u.addr, f.name)})
				break
			}
		}
	}

	merged := envoy.Set{}
	add := func(units map[string]*unit) {
		for _, name := range sortedKeys(units) {
			for typeURL, items := range units[name].set {
				if merged[typeURL] == nil {
					merged[typeURL] = map[string]types.Resource{}
				}
				for n, r := range items {
					merged[typeURL][n] = r
				}
			}
		}
	}
	add(kept)
	add(fresh) // fresh resources win on name collisions

	p.errs = errs
	res := Result{Errors: errs, Serving: sortedKeys(fresh), LastGood: sortedKeys(kept)}
	b, err := h.build(merged)
	if err != nil {
		p.publishErr = fmt.Errorf("snapshot not published: %w", err)
		if p.cur != nil {
			res.Versions = p.cur.versions
		}
		return res, p.publishErr
	}
	p.publishErr = nil
	res.Versions = b.versions
	for _, typeURL := range servedTypes {
		if p.cur == nil || p.cur.versions[typeURL] != b.versions[typeURL] {
			res.Changed = append(res.Changed, typeURL)
		}
	}
	if len(res.Changed) > 0 {
		if err := p.cache.SetSnapshot(ctx, p.key, b.snap); err != nil {
			p.publishErr = fmt.Errorf("snapshot not published: %w", err)
			res.Changed = nil
			if p.cur != nil {
				res.Versions = p.cur.versions
			}
			return res, p.publishErr
		}
		p.cur = b
		p.lastPush = p.now()
		res.Pushed = true
	}
	p.lastGood = make(map[string]*unit, len(fresh)+len(kept))
	for n, u := range kept {
		p.lastGood[n] = u
	}
	for n, u := range fresh {
		p.lastGood[n] = u
	}
	return res, nil
}

// accept builds and checks one listener's unit on its own, so that a defect
// in one listener is charged to it rather than failing the whole snapshot.
func (p *Publisher) accept(tr *envoy.Translator, h *hasher, ic *infoCache, m *config.Model, l *config.Listener) (*unit, error) {
	set, err := tr.Unit(l)
	if err != nil {
		return nil, fmt.Errorf("listener %s: translate: %w", l.Name, err)
	}
	if err := canonicalizeSet(set); err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	if _, err := h.build(set); err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	return &unit{
		name:   l.Name,
		source: filepath.Clean(l.SourceFile),
		addr:   l.Address,
		set:    set,
		info:   infoOf(ic, m, l),
	}, nil
}

// Ready reports whether a valid snapshot is being served.
func (p *Publisher) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur != nil
}

// Versions returns the per-type versions served, nil before the first push.
func (p *Publisher) Versions() Versions {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return nil
	}
	return p.cur.versions
}

// status fills the publisher's part of the control plane status.
func (p *Publisher) status() *admin.ControlPlane {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := &admin.ControlPlane{
		Ready:              p.cur != nil,
		Versions:           map[string]string{},
		LastReload:         p.lastReload,
		LastPush:           p.lastPush,
		Reloads:            p.reloads,
		Listeners:          []admin.Listener{},
		TrustStores:        []admin.TrustStore{},
		ClientCertificates: []admin.Certificate{},
		Errors:             []admin.Problem{},
		Warnings:           []admin.Problem{},
		Nodes:              []admin.Node{},
	}
	if p.cur != nil {
		for t, v := range p.cur.versions {
			if _, ours := shortNames[t]; ours {
				st.Versions[TypeName(t)] = v
			}
		}
	}
	stale := map[string]bool{}
	staleFiles := map[string]bool{}
	trust := map[string]*admin.TrustStore{}
	clients := map[string]admin.Certificate{}
	for _, name := range sortedKeys(p.lastGood) {
		u := p.lastGood[name]
		li := u.info.listener
		isStale := p.isStale(name)
		if isStale {
			li.State = admin.StateLastGood
			stale[name] = true
			staleFiles[u.source] = true
		}
		st.Listeners = append(st.Listeners, li)
		for s, ts := range u.info.trust {
			if cur, ok := trust[s]; ok && cur.State == admin.StateServing {
				continue // a fresh unit's view of the store wins
			}
			c := *ts
			if isStale {
				c.State = admin.StateLastGood
			}
			trust[s] = &c
		}
		for s, c := range u.info.clients {
			clients[s] = c
		}
	}
	for _, s := range sortedKeys(trust) {
		st.TrustStores = append(st.TrustStores, *trust[s])
	}
	for _, s := range sortedKeys(clients) {
		st.ClientCertificates = append(st.ClientCertificates, clients[s])
	}
	if p.model != nil {
		for _, pr := range p.model.Problems {
			served := stale[pr.Listener]
			if pr.Listener == "" {
				served = staleFiles[filepath.Clean(pr.File)]
			}
			st.Errors = append(st.Errors, problemOf(pr, served))
		}
		for _, pr := range p.model.Warnings {
			st.Warnings = append(st.Warnings, problemOf(pr, false))
		}
	}
	for _, e := range p.errs {
		st.Errors = append(st.Errors, admin.Problem{
			File: e.File, Listener: e.Listener, Reason: e.Err.Error(), LastGoodServed: stale[e.Listener],
		})
	}
	if p.publishErr != nil {
		st.Errors = append(st.Errors, admin.Problem{Reason: p.publishErr.Error(), LastGoodServed: p.cur != nil})
	}
	return st
}

// isStale reports whether the served unit of name is a kept last good one.
// Called with p.mu held.
func (p *Publisher) isStale(name string) bool {
	if p.model == nil {
		return false
	}
	for _, l := range p.model.Listeners {
		if l.Name == name {
			return slices.ContainsFunc(p.errs, func(e ListenerError) bool { return e.Listener == name })
		}
	}
	return true
}

// expiries lists every certificate served, for the expiry gauge.
func (p *Publisher) expiries() []expiry {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[expiry]bool{}
	var out []expiry
	add := func(es []expiry) {
		for _, e := range es {
			if !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		}
	}
	// Units of one update share their stores' slices: walk each once.
	stores := map[*expiry]bool{}
	for _, name := range sortedKeys(p.lastGood) {
		in := p.lastGood[name].info
		add(in.expiry)
		for _, es := range in.trustExpiry {
			if len(es) == 0 || stores[&es[0]] {
				continue
			}
			stores[&es[0]] = true
			add(es)
		}
	}
	return out
}

func problemOf(pr config.Problem, lastGood bool) admin.Problem {
	reason := "unknown problem"
	if pr.Err != nil {
		reason = pr.Err.Error()
	}
	return admin.Problem{File: pr.File, Line: pr.Line, Listener: pr.Listener, Reason: reason, LastGoodServed: lastGood}
}
