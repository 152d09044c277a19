package xds

import (
	"path/filepath"
	"slices"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/status"
)

// Served is what one Update left served: the snapshot's versions, each
// listener with where it came from and what it presents, and the problems
// of the model it came from. The Publisher replaces it whole on every
// Update and never modifies it afterwards, so /status, expiry and metrics
// read it without locks and always see one consistent publish.
type Served struct {
	// Snapshot is what the cache serves, and Versions its per-type
	// versions; both nil before the first push.
	Snapshot *cache.Snapshot
	Versions Versions
	// Reloads counts Updates; LastReload is when the last one ran and
	// LastPush when the served snapshot last changed.
	Reloads              uint64
	LastReload, LastPush time.Time
	// Listeners are the listeners served, sorted by name.
	Listeners []ServedListener
	// Errors are the model's problems, the listeners that failed
	// translation and, if nothing was published, why; Warnings the model's
	// warnings.
	Errors, Warnings []status.Problem
}

// ServedListener is one listener as served, and its provenance.
type ServedListener struct {
	// Source is the config file that defined it, cleaned.
	Source string
	// LastGood is true when its current inputs are invalid and its last
	// good version is what is served.
	LastGood bool
	// Listener describes it, State included.
	Listener status.Listener
	// Clients are the upstream key pairs its backends present, by Secret
	// name.
	Clients map[string]status.Certificate
	// Trust are the stores it verifies against (clients, or backends), by
	// store name. A store's summary is shared, read-only, by every listener
	// accepted in one Update.
	Trust map[string]*status.TrustStore
}

// Ready reports whether a valid snapshot is being served.
func (s *Served) Ready() bool { return s.Versions != nil }

// Status is the control plane's /status section as far as publishing goes:
// the caller adds the connected nodes and the expiry view.
func (s *Served) Status() *status.ControlPlane {
	st := &status.ControlPlane{
		Ready:              s.Ready(),
		Versions:           map[string]string{},
		LastReload:         s.LastReload,
		LastPush:           s.LastPush,
		Reloads:            s.Reloads,
		Listeners:          []status.Listener{},
		TrustStores:        []status.TrustStore{},
		ClientCertificates: []status.Certificate{},
		Errors:             slices.Clone(s.Errors),
		Warnings:           slices.Clone(s.Warnings),
		Nodes:              []status.Node{},
		Expiring:           []status.Expiry{},
	}
	if st.Errors == nil {
		st.Errors = []status.Problem{}
	}
	if st.Warnings == nil {
		st.Warnings = []status.Problem{}
	}
	for t, v := range s.Versions {
		if _, ours := shortNames[t]; ours {
			st.Versions[TypeName(t)] = v
		}
	}
	for _, l := range s.Listeners {
		st.Listeners = append(st.Listeners, l.Listener)
	}
	trust, clients := s.stores(), s.clients()
	for _, name := range sortedKeys(trust) {
		st.TrustStores = append(st.TrustStores, *trust[name])
	}
	for _, name := range sortedKeys(clients) {
		st.ClientCertificates = append(st.ClientCertificates, clients[name])
	}
	return st
}

// stores merges the listeners' trust stores by name; a store seen by a
// listener served from current inputs wins over a last good one's.
func (s *Served) stores() map[string]*status.TrustStore {
	out := map[string]*status.TrustStore{}
	for _, l := range s.Listeners {
		for name, ts := range l.Trust {
			if cur, ok := out[name]; ok && cur.State == status.StateServing {
				continue
			}
			c := *ts
			if l.LastGood {
				c.State = status.StateLastGood
			}
			out[name] = &c
		}
	}
	return out
}

func (s *Served) clients() map[string]status.Certificate {
	out := map[string]status.Certificate{}
	for _, l := range s.Listeners {
		for name, c := range l.Clients {
			out[name] = c
		}
	}
	return out
}

// Inventory is what is served, for status.Expiries: trust stores are
// reported under the name of the Secret that carries them.
func (s *Served) Inventory() status.Inventory {
	inv := status.Inventory{Stores: map[string]*status.TrustStore{}}
	for _, l := range s.Listeners {
		inv.Servers = append(inv.Servers, l.Listener.Certificates...)
	}
	clients := s.clients()
	for _, name := range sortedKeys(clients) {
		inv.Clients = append(inv.Clients, clients[name])
	}
	for name, ts := range s.stores() {
		inv.Stores[envoy.TrustSecretName(name)] = ts
	}
	return inv
}

// newServed describes what Update leaves served. units are the listeners
// served, m the model just loaded, errs its listener failures and
// publishErr why nothing was published, if so.
func newServed(prev *Served, units map[string]*unit, m *config.Model, errs []ListenerError, publishErr error) *Served {
	s := &Served{
		Snapshot:   prev.Snapshot,
		Versions:   prev.Versions,
		Reloads:    prev.Reloads,
		LastReload: prev.LastReload,
		LastPush:   prev.LastPush,
		Listeners:  make([]ServedListener, 0, len(units)),
	}
	stale, staleFiles := map[string]bool{}, map[string]bool{}
	for _, name := range sortedKeys(units) {
		u := units[name]
		l := ServedListener{Source: u.source, Listener: u.info.listener, Clients: u.info.clients, Trust: u.info.trust}
		if isStale(m, errs, name) {
			l.LastGood = true
			l.Listener.State = status.StateLastGood
			stale[name] = true
			staleFiles[u.source] = true
		}
		s.Listeners = append(s.Listeners, l)
	}
	for _, pr := range m.Problems {
		served := stale[pr.Listener]
		if pr.Listener == "" {
			served = staleFiles[filepath.Clean(pr.File)]
		}
		s.Errors = append(s.Errors, problemOf(pr, served))
	}
	for _, pr := range m.Warnings {
		s.Warnings = append(s.Warnings, problemOf(pr, false))
	}
	for _, e := range errs {
		s.Errors = append(s.Errors, status.Problem{
			File: e.File, Listener: e.Listener, Reason: e.Err.Error(), LastGoodServed: stale[e.Listener],
		})
	}
	if publishErr != nil {
		s.Errors = append(s.Errors, status.Problem{Reason: publishErr.Error(), LastGoodServed: prev.Ready()})
	}
	return s
}

// isStale reports whether the served unit of name is a kept last good one:
// m still defines it but it failed, or m no longer defines it (its file
// failed to parse).
func isStale(m *config.Model, errs []ListenerError, name string) bool {
	for _, l := range m.Listeners {
		if l.Name == name {
			return slices.ContainsFunc(errs, func(e ListenerError) bool { return e.Listener == name })
		}
	}
	return true
}

func problemOf(pr config.Problem, lastGood bool) status.Problem {
	reason := "unknown problem"
	if pr.Err != nil {
		reason = pr.Err.Error()
	}
	return status.Problem{File: pr.File, Line: pr.Line, Listener: pr.Listener, Reason: reason, LastGoodServed: lastGood}
}

// EmittedTypes are the type URLs certplane emits, in ADS order.
func EmittedTypes() []string {
	out := make([]string, 0, len(shortNames))
	for _, t := range servedTypes {
		if _, ours := shortNames[t]; ours {
			out = append(out, t)
		}
	}
	return out
}
