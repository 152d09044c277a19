package envoy

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/config"
)

// Set holds resources by type URL (resource.ListenerType etc.), then by name.
type Set map[string]map[string]types.Resource

// Types are the five type URLs certplane serves, in dependency order. Every
// Set built here has all five keys, possibly with empty maps: an absent type
// would leave by-name requests for it unanswered.
var Types = []string{
	resource.ListenerType,
	resource.RouteType,
	resource.ClusterType,
	resource.EndpointType,
	resource.SecretType,
}

func newSet() Set {
	s := make(Set, len(Types))
	for _, t := range Types {
		s[t] = map[string]types.Resource{}
	}
	return s
}

// Unit builds everything one valid listener needs: its Listener, its
// RouteConfiguration, and the Clusters, ClusterLoadAssignments and Secrets
// they reference (exactly those). l must be one of m.Listeners.
func Unit(m *config.Model, l *config.Listener) (Set, error) {
	return NewTranslator(m).Unit(l)
}

// Translator builds the units of one model and shares their Secrets: a
// trust store (CAs and CRLs, possibly tens of MB) or a key pair used by many
// listeners becomes one *tlsv3.Secret that every unit holds, instead of one
// copy per listener. Secrets are immutable once built, so sharing is safe;
// use one Translator per model (per update), not across models.
type Translator struct {
	m        *config.Model
	secrets  map[string]*tlsv3.Secret // by Secret name
	instance string                   // Options.Instance of every unit
}

// NewTranslator returns a Translator for m.
func NewTranslator(m *config.Model) *Translator {
	return &Translator{m: m, secrets: map[string]*tlsv3.Secret{}}
}

// WithInstance makes t build loop tokens for control plane instance id
// (Options.Instance) and returns t.
func (t *Translator) WithInstance(id string) *Translator {
	t.instance = id
	return t
}

// Unit is the package-level Unit for one listener of the Translator's
// model, with Secrets shared across the units it builds.
func (t *Translator) Unit(l *config.Listener) (Set, error) {
	return t.unit(l, Options{Instance: t.instance})
}

// Seed makes sec the Secret t uses for sec.Name instead of building one.
// The caller vouches that sec is what t would build from its model: the
// publisher seeds the Secrets of a listener whose inputs (fingerprint) are
// unchanged, so a changed listener that shares them does not rebuild a
// trust Secret holding tens of MB of CRLs.
func (t *Translator) Seed(sec *tlsv3.Secret) {
	if _, ok := t.secrets[sec.GetName()]; !ok {
		t.secrets[sec.GetName()] = sec
	}
}

// Secret builds (once) the Secret named name from t's model: a server,
// client or trust Secret by its stable name. The publisher uses it to give
// a listener whose Listener, Route and Cluster resources cannot have
// changed the current content of the Secrets they reference.
func (t *Translator) Secret(name string) (*tlsv3.Secret, error) {
	kind, n, _ := strings.Cut(name, "/")
	switch kind {
	case "server":
		if kp, ok := t.m.Servers[n]; ok {
			return t.secret(name, func() (*tlsv3.Secret, error) { return ServerSecret(kp) })
		}
	case "client":
		if kp, ok := t.m.Clients[n]; ok {
			return t.secret(name, func() (*tlsv3.Secret, error) { return ClientSecret(kp) })
		}
	case "trust":
		if ts, ok := t.m.Trust[n]; ok {
			return t.secret(name, func() (*tlsv3.Secret, error) { return ValidationContextSecret(ts) })
		}
	}
	return nil, fmt.Errorf("secret %q: nothing of that name is loaded", name)
}

// secret returns the Secret named name, building it once with build.
func (t *Translator) secret(name string, build func() (*tlsv3.Secret, error)) (*tlsv3.Secret, error) {
	if sec, ok := t.secrets[name]; ok {
		return sec, nil
	}
	sec, err := build()
	if err != nil {
		return nil, err // not cached: each listener reports it
	}
	t.secrets[name] = sec
	return sec, nil
}

func (t *Translator) unit(l *config.Listener, o Options) (Set, error) {
	m := t.m
	if !slices.Contains(m.Listeners, l) {
		return nil, fmt.Errorf("listener %q is not one of the model's valid listeners", l.Name)
	}
	s := newSet()
	lis, err := Listener(m, l, o)
	if err != nil {
		return nil, err
	}
	s[resource.ListenerType][lis.Name] = lis
	if !o.Static {
		rc := RouteConfiguration(l, o)
		s[resource.RouteType][rc.Name] = rc
	}
	for _, cert := range l.Certificates {
		kp := m.Servers[cert] // presence checked by Listener
		sec, err := t.secret(ServerSecretName(cert), func() (*tlsv3.Secret, error) { return ServerSecret(kp) })
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.Name, err)
		}
		s[resource.SecretType][sec.Name] = sec
	}
	if l.ClientAuth.Mode.VerifiesClients() {
		if err := t.addTrust(s, l.ClientAuth.TrustStore); err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.Name, err)
		}
	}
	for _, r := range l.Routes {
		if err := t.addBackend(s, r.Backend, o); err != nil {
			return nil, fmt.Errorf("listener %q route %s%s%s: %w", l.Name, r.Host, r.Path, r.PathPrefix, err)
		}
	}
	return s, nil
}

func (t *Translator) addTrust(s Set, store string) error {
	ts, ok := t.m.Trust[store]
	if !ok {
		return fmt.Errorf("trust store %q is not loaded (certs/trust/%s)", store, store)
	}
	sec, err := t.secret(TrustSecretName(store), func() (*tlsv3.Secret, error) { return ValidationContextSecret(ts) })
	if err != nil {
		return err
	}
	s[resource.SecretType][sec.Name] = sec
	return nil
}

func (t *Translator) addBackend(s Set, name string, o Options) error {
	m := t.m
	if _, done := s[resource.ClusterType][name]; done {
		return nil
	}
	b, ok := m.Backends[name]
	if !ok {
		return fmt.Errorf("backend %q is not defined or not valid", name)
	}
	c, err := Cluster(b, o)
	if err != nil {
		return err
	}
	s[resource.ClusterType][c.Name] = c
	if UsesEDS(b) && !o.Static {
		cla := ClusterLoadAssignment(b)
		s[resource.EndpointType][cla.ClusterName] = cla
	}
	if b.TLS == nil {
		return nil
	}
	if err := t.addTrust(s, b.TLS.TrustStore); err != nil {
		return fmt.Errorf("backend %q: %w", name, err)
	}
	if c := b.TLS.Certificate; c != "" {
		kp, ok := m.Clients[c]
		if !ok {
			return fmt.Errorf("backend %q: client certificate %q is not loaded (certs/client/%s)", name, c, c)
		}
		sec, err := t.secret(ClientSecretName(c), func() (*tlsv3.Secret, error) { return ClientSecret(kp) })
		if err != nil {
			return fmt.Errorf("backend %q: %w", name, err)
		}
		s[resource.SecretType][sec.Name] = sec
	}
	return nil
}

// Translate returns Unit for every listener of m, keyed by listener name.
// A listener that fails to translate is missing from the map and its error
// is part of the joined error; the others are still returned. The units
// share their Secrets (see Translator).
func Translate(m *config.Model) (map[string]Set, error) {
	out := make(map[string]Set, len(m.Listeners))
	var errs []error
	t := NewTranslator(m)
	for _, l := range m.Listeners {
		s, err := t.Unit(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[l.Name] = s
	}
	return out, errors.Join(errs...)
}

// Merge unions sets. Listeners share Clusters and Secrets; a name built twice
// must be the same resource, else the sets came from different models and
// merging them would publish one listener's view under another's name. The
// exception is a shared address's Listener, whose parts (one per config
// listener) MergeListeners joins.
func Merge(sets ...Set) (Set, error) {
	out := newSet()
	for _, s := range sets {
		for t, byName := range s {
			if out[t] == nil {
				out[t] = map[string]types.Resource{}
			}
			for n, r := range byName {
				if prev, ok := out[t][n]; ok && !proto.Equal(prev, r) {
					if t != resource.ListenerType || !IsSharedListenerName(n) {
						return nil, fmt.Errorf("two different %s resources named %q", shortType(t), n)
					}
					joined, err := MergeListeners(prev.(*listenerv3.Listener), r.(*listenerv3.Listener))
					if err != nil {
						return nil, err
					}
					r = joined
				}
				out[t][n] = r
			}
		}
	}
	return out, nil
}

// Names returns the sorted resource names of type t in s.
func (s Set) Names(t string) []string {
	names := make([]string, 0, len(s[t]))
	for n := range s[t] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Sorted returns the resources of type t in s, sorted by name.
func (s Set) Sorted(t string) []types.Resource {
	out := make([]types.Resource, 0, len(s[t]))
	for _, n := range s.Names(t) {
		out = append(out, s[t][n])
	}
	return out
}

func shortType(t string) string {
	if len(t) > len(resource.APITypePrefix) {
		return t[len(resource.APITypePrefix):]
	}
	return t
}
