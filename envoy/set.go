package envoy

import (
	"errors"
	"fmt"
	"slices"
	"sort"

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
	return unit(m, l, Options{})
}

func unit(m *config.Model, l *config.Listener, o Options) (Set, error) {
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
		rc := RouteConfiguration(l)
		s[resource.RouteType][rc.Name] = rc
	}
	for _, cert := range l.Certificates {
		sec, err := ServerSecret(m.Servers[cert]) // presence checked by Listener
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.Name, err)
		}
		s[resource.SecretType][sec.Name] = sec
	}
	if mode := l.ClientAuth.Mode; mode == config.ModeOptional || mode == config.ModeVerify {
		if err := addTrust(s, m, l.ClientAuth.TrustStore); err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.Name, err)
		}
	}
	for _, r := range l.Routes {
		if err := addBackend(s, m, r.Backend, o); err != nil {
			return nil, fmt.Errorf("listener %q route %s: %w", l.Name, r.PathPrefix, err)
		}
	}
	return s, nil
}

func addTrust(s Set, m *config.Model, store string) error {
	ts, ok := m.Trust[store]
	if !ok {
		return fmt.Errorf("trust store %q is not loaded (certs/trust/%s)", store, store)
	}
	sec, err := ValidationContextSecret(ts)
	if err != nil {
		return err
	}
	s[resource.SecretType][sec.Name] = sec
	return nil
}

func addBackend(s Set, m *config.Model, name string, o Options) error {
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
	if err := addTrust(s, m, b.TLS.TrustStore); err != nil {
		return fmt.Errorf("backend %q: %w", name, err)
	}
	if c := b.TLS.Certificate; c != "" {
		kp, ok := m.Clients[c]
		if !ok {
			return fmt.Errorf("backend %q: client certificate %q is not loaded (certs/client/%s)", name, c, c)
		}
		sec, err := ClientSecret(kp)
		if err != nil {
			return fmt.Errorf("backend %q: %w", name, err)
		}
		s[resource.SecretType][sec.Name] = sec
	}
	return nil
}

// Translate returns Unit for every listener of m, keyed by listener name.
// A listener that fails to translate is missing from the map and its error
// is part of the joined error; the others are still returned.
func Translate(m *config.Model) (map[string]Set, error) {
	out := make(map[string]Set, len(m.Listeners))
	var errs []error
	for _, l := range m.Listeners {
		s, err := Unit(m, l)
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
// merging them would publish one listener's view under another's name.
func Merge(sets ...Set) (Set, error) {
	out := newSet()
	for _, s := range sets {
		for t, byName := range s {
			if out[t] == nil {
				out[t] = map[string]types.Resource{}
			}
			for n, r := range byName {
				if prev, ok := out[t][n]; ok && !proto.Equal(prev, r) {
					return nil, fmt.Errorf("two different %s resources named %q", shortType(t), n)
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
