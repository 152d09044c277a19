package xds

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

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

	mu       sync.Mutex
	lastGood map[string]*unit // what is served now, by listener
	cur      *built           // nil until the first publish

	// served is replaced whole by every Update; readers never lock.
	served atomic.Pointer[Served]
}

// NewPublisher publishes into c under key: allNodes (the default) when every
// node shares one snapshot, else the one node ID served.
func NewPublisher(c cache.SnapshotCache, nodeID string) *Publisher {
	key := allNodes
	if nodeID != "" {
		key = nodeID
	}
	p := &Publisher{cache: c, key: key, now: time.Now, instance: rand.Text(), lastGood: map[string]*unit{}}
	p.served.Store(&Served{})
	return p
}

// Served is what the last Update left served. It is never nil and never
// modified: a later Update stores a new one.
func (p *Publisher) Served() *Served { return p.served.Load() }

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
	prev := *p.served.Load()
	prev.Reloads++
	prev.LastReload = p.now()

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

	res := Result{Errors: errs, Serving: sortedKeys(fresh), LastGood: sortedKeys(kept)}
	fail := func(err error) (Result, error) {
		err = fmt.Errorf("snapshot not published: %w", err)
		if p.cur != nil {
			res.Versions = p.cur.versions
		}
		p.served.Store(newServed(&prev, p.lastGood, m, errs, err))
		return res, err
	}
	b, err := h.build(merged)
	if err != nil {
		return fail(err)
	}
	res.Versions = b.versions
	for _, typeURL := range servedTypes {
		if p.cur == nil || p.cur.versions[typeURL] != b.versions[typeURL] {
			res.Changed = append(res.Changed, typeURL)
		}
	}
	units := make(map[string]*unit, len(fresh)+len(kept))
	for n, u := range kept {
		units[n] = u
	}
	for n, u := range fresh {
		units[n] = u
	}
	if len(res.Changed) > 0 {
		// Served is stored before the snapshot reaches the cache: a client
		// can receive (and ACK or NACK) a version the instant SetSnapshot
		// runs, and /status must never show a node holding a version it
		// does not itself report as served.
		next := prev
		next.Snapshot, next.Versions = b.snap, b.versions
		next.LastPush = p.now()
		p.served.Store(newServed(&next, units, m, errs, nil))
		if err := p.cache.SetSnapshot(ctx, p.key, b.snap); err != nil {
			res.Changed = nil
			return fail(err)
		}
		p.cur = b
		res.Pushed = true
		p.lastGood = units
		return res, nil
	}
	p.lastGood = units
	p.served.Store(newServed(&prev, p.lastGood, m, errs, nil))
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
func (p *Publisher) Ready() bool { return p.Served().Ready() }

// Versions returns the per-type versions served, nil before the first push.
func (p *Publisher) Versions() Versions { return p.Served().Versions }
