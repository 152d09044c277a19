package xds

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

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
	// fingerprint is the listener's config.Listener.Fingerprint when the
	// unit was built: equal fingerprints mean equal inputs, so the unit is
	// served again as it is instead of being translated anew.
	fingerprint string
	// shape covers what the unit's Listener, Route, Cluster and Endpoints
	// resources are built from (see unitShape); Secret content is not part
	// of it.
	shape string
	set   envoy.Set
	info  unitInfo
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
	sums     *hasher          // resource sums and validations, across updates
	// wire, when set, holds the lazy form of large Secrets for the cache:
	// only a server whose codec is wireCodec may serve it (NewServer).
	wire wireResources

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
	// One translator per update: units share their Secrets. The hasher
	// keeps its sums across updates (see hasher), so a resource served
	// again is neither re-validated nor re-hashed.
	tr, h, ic := envoy.NewTranslator(m).WithInstance(p.instance), p.hasher(), newInfoCache()
	// Incremental: a listener whose inputs are unchanged (same fingerprint)
	// is served from its last unit, untranslated; its Secrets seed the
	// translator, so a changed listener sharing them does not rebuild a
	// trust Secret that may hold tens of MB of CRLs.
	var changed []*config.Listener
	for _, l := range m.Listeners {
		if blocked[l.Name] {
			continue // the model's contract says this cannot happen; be safe
		}
		if old := p.lastGood[l.Name]; old != nil && l.Fingerprint != "" && old.fingerprint == l.Fingerprint {
			fresh[l.Name] = old
			for _, r := range old.set[resource.SecretType] {
				tr.Seed(r.(*tlsv3.Secret))
			}
			continue
		}
		changed = append(changed, l)
	}
	for _, l := range changed {
		shape := unitShape(m, l)
		var u *unit
		var err error
		if old := p.lastGood[l.Name]; old != nil && old.shape == shape {
			// Only Secret content changed (a new CRL in a store of 10,000
			// CAs that 1,000 listeners verify against): keep the unit's
			// other resources and give it the current Secrets.
			u, err = p.resecret(tr, h, ic, m, l, old)
		} else {
			u, err = p.accept(tr, h, ic, m, l)
		}
		if u != nil {
			u.shape = shape
		}
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
			if u.addr != "" && u.addr == f.addr && !sharesListener(u, f) {
				delete(kept, name)
				errs = append(errs, ListenerError{Listener: name, File: u.source, Err: fmt.Errorf(
					"listener %s: last good version withdrawn: its address %s is now used by listener %s", name, u.addr, f.name)})
				break
			}
		}
	}

	shared, joinErr := joinShared(fresh, kept, &errs)
	merged := envoy.Set{resource.ListenerType: shared}
	add := func(units map[string]*unit) {
		for _, name := range sortedKeys(units) {
			for typeURL, items := range units[name].set {
				if merged[typeURL] == nil {
					merged[typeURL] = map[string]types.Resource{}
				}
				for n, r := range items {
					if typeURL == resource.ListenerType && envoy.IsSharedListenerName(n) {
						continue // joined by joinShared
					}
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
	if joinErr != nil {
		return fail(joinErr)
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
		var snap *cache.Snapshot
		var err error
		if p.wire != nil {
			snap, err = p.wire.snapshot(b.snap, h)
		} else {
			snap, err = materialized(b.snap)
		}
		if err != nil {
			res.Changed = nil
			return fail(err)
		}
		if err := p.cache.SetSnapshot(ctx, p.key, snap); err != nil {
			res.Changed = nil
			return fail(err)
		}
		p.cur = b
		res.Pushed = true
		p.lastGood = units
		p.keepSums(units)
		return res, nil
	}
	p.lastGood = units
	p.keepSums(units)
	p.served.Store(newServed(&prev, p.lastGood, m, errs, nil))
	return res, nil
}

// hasher returns the hasher of this update, holding the sums of what is
// served now.
func (p *Publisher) hasher() *hasher {
	if p.sums == nil {
		p.sums = newHasher()
	}
	return p.sums
}

// keepSums drops the sums of resources no longer served, so the cache
// never outgrows one snapshot (plus the candidates of one update).
func (p *Publisher) keepSums(units map[string]*unit) {
	live := map[types.Resource]bool{}
	for _, u := range units {
		for _, items := range u.set {
			for _, r := range items {
				live[r] = true
			}
		}
	}
	p.sums.retain(live)
}

// resecret is accept for a listener whose non-Secret resources are those of
// old: it builds only the Secrets old references, from m.
func (p *Publisher) resecret(tr *envoy.Translator, h *hasher, ic *infoCache, m *config.Model, l *config.Listener, old *unit) (*unit, error) {
	set := envoy.Set{}
	for typeURL, items := range old.set {
		if typeURL != resource.SecretType {
			set[typeURL] = items // shared, never mutated: units are immutable
		}
	}
	secrets := make(map[string]types.Resource, len(old.set[resource.SecretType]))
	for name := range old.set[resource.SecretType] {
		sec, err := tr.Secret(name)
		if err != nil {
			return nil, fmt.Errorf("listener %s: translate: %w", l.Name, err)
		}
		secrets[name] = sec
	}
	set[resource.SecretType] = secrets
	// The other resources are old's, checked when it was accepted, and
	// reference exactly these names: only the Secrets need checking.
	for _, name := range sortedKeys(secrets) {
		if err := h.check(secrets[name]); err != nil {
			return nil, fmt.Errorf("listener %s: secrets %q: %w", l.Name, name, err)
		}
	}
	return newUnit(ic, m, l, set), nil
}

// unitShape is a digest of everything envoy's builders read to make a
// listener's Listener, RouteConfiguration, Cluster and ClusterLoadAssignment
// resources: the listener's and its backends' configuration, which key
// pairs and trust stores exist, and the DNS names of its server
// certificates (SNI). Secret content is not part of it. When envoy's
// builders come to read more of the model, this must follow;
// TestIncrementalEqualsFullTranslation compares against a full build.
func unitShape(m *config.Model, l *config.Listener) string {
	d := sha256.New()
	put := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			panic("xds: model value not encodable: " + err.Error()) // the model holds plain data
		}
		fmt.Fprintf(d, "%d:", len(b))
		d.Write(b)
	}
	lc := *l
	lc.Fingerprint = ""
	put(lc)
	for _, name := range l.Certificates {
		kp := m.Servers[name]
		if kp == nil || len(kp.Chain) == 0 {
			put(nil)
			continue
		}
		put(kp.Chain[0].DNSNames)
	}
	put(m.Trust[l.ClientAuth.TrustStore] != nil)
	for _, r := range l.Routes {
		b := m.Backends[r.Backend]
		if b == nil {
			put(nil)
			continue
		}
		bc := *b
		bc.Fingerprint = ""
		put(bc)
		if b.TLS != nil {
			put([]bool{m.Trust[b.TLS.TrustStore] != nil, m.Clients[b.TLS.Certificate] != nil})
		}
	}
	return hex.EncodeToString(d.Sum(nil))
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
	return newUnit(ic, m, l, set), nil
}

// newUnit is l's unit serving set, accepted.
func newUnit(ic *infoCache, m *config.Model, l *config.Listener, set envoy.Set) *unit {
	return &unit{
		name:        l.Name,
		fingerprint: l.Fingerprint,
		source:      filepath.Clean(l.SourceFile),
		addr:        l.Address,
		set:         set,
		info:        infoOf(ic, m, l),
	}
}

// Ready reports whether a valid snapshot is being served.
func (p *Publisher) Ready() bool { return p.Served().Ready() }

// Versions returns the per-type versions served, nil before the first push.
func (p *Publisher) Versions() Versions { return p.Served().Versions }
