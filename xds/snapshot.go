package xds

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/envoy"
)

// servedTypes are published in every snapshot, empty when unused: a type
// absent from a snapshot has version "" and go-control-plane never answers a
// by-name request for it, which would hang a client that asks.
var servedTypes = func() []string {
	out := make([]string, 0, types.UnknownType)
	for t := types.ResponseType(0); t < types.UnknownType; t++ {
		u, err := cache.GetResponseTypeURL(t)
		if err != nil {
			panic(err) // every value below UnknownType has a URL
		}
		out = append(out, u)
	}
	return out
}()

// shortNames are the operator-facing names of the types certplane emits.
var shortNames = map[string]string{
	resource.ListenerType: "listeners",
	resource.RouteType:    "routes",
	resource.ClusterType:  "clusters",
	resource.EndpointType: "endpoints",
	resource.SecretType:   "secrets",
}

// TypeName is the short name of an xDS type URL ("secrets" for Secret), or
// the URL itself for a type certplane does not emit.
func TypeName(typeURL string) string {
	if n, ok := shortNames[typeURL]; ok {
		return n
	}
	return typeURL
}

// Versions maps a type URL to its content hash.
type Versions map[string]string

// built is one validated snapshot with its per-type versions.
type built struct {
	snap     *cache.Snapshot
	versions Versions
}

// build validates s and turns it into a snapshot. It publishes nothing.
func build(s envoy.Set) (*built, error) { return newHasher().build(s) }

// build is build with h's cached resource hashes.
func (h *hasher) build(s envoy.Set) (*built, error) {
	if err := validateSet(s, h); err != nil {
		return nil, err
	}
	b := &built{snap: &cache.Snapshot{}, versions: Versions{}}
	for _, typeURL := range servedTypes {
		items := s[typeURL]
		v, err := h.typeVersion(items)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", TypeName(typeURL), err)
		}
		list := make([]types.Resource, 0, len(items))
		for _, r := range items {
			list = append(list, r)
		}
		// Each type carries its own version, so a CRL change re-sends
		// Secrets and leaves Listeners (and their connections) alone.
		b.snap.Resources[cache.GetResponseType(typeURL)] = cache.NewResources(v, list)
		b.versions[typeURL] = v
	}
	if err := b.snap.Consistent(); err != nil {
		return nil, fmt.Errorf("inconsistent snapshot: %w", err)
	}
	return b, nil
}

type validator interface{ ValidateAll() error }

// validateSet checks every resource against Envoy's proto constraints, that
// each is filed under its own name, and that the set holds exactly the
// Secrets its resources reference: go-control-plane's Consistent does not
// look at Secrets, and in ADS mode one unreferenced Secret stalls SDS.
// h, when not nil, remembers the resources that passed ValidateAll and
// the Secrets each references, so an immutable resource is inspected once
// however often it is served.
func validateSet(s envoy.Set, h *hasher) error {
	var valid map[types.Resource]bool
	if h != nil {
		valid = h.valid
	}
	var errs []error
	for _, typeURL := range sortedKeys(s) {
		if cache.GetResponseType(typeURL) == types.UnknownType {
			errs = append(errs, fmt.Errorf("unknown resource type %s", typeURL))
			continue
		}
		items := s[typeURL]
		for _, name := range sortedKeys(items) {
			r := items[name]
			if r == nil {
				errs = append(errs, fmt.Errorf("%s %q: nil resource", TypeName(typeURL), name))
				continue
			}
			if got := cache.GetResourceName(r); got != name {
				errs = append(errs, fmt.Errorf("%s %q: resource is named %q", TypeName(typeURL), name, got))
			}
			if name == "" {
				errs = append(errs, fmt.Errorf("%s: resource has no name", TypeName(typeURL)))
			}
			if valid[r] {
				continue
			}
			v, ok := r.(validator)
			if !ok {
				errs = append(errs, fmt.Errorf("%s %q: %T cannot be validated", TypeName(typeURL), name, r))
				continue
			}
			if err := v.ValidateAll(); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", TypeName(typeURL), name, err))
			} else if valid != nil {
				valid[r] = true
			}
		}
	}
	refs, err := h.referencedSecrets(s)
	if err != nil {
		errs = append(errs, fmt.Errorf("secret references: %w", err))
	} else {
		have := s[resource.SecretType]
		var missing, extra []string
		for _, n := range refs {
			if _, ok := have[n]; !ok {
				missing = append(missing, n)
			}
		}
		for n := range have {
			if !slices.Contains(refs, n) {
				extra = append(extra, n)
			}
		}
		slices.Sort(missing)
		slices.Sort(extra)
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("referenced secrets missing: %s", strings.Join(missing, ", ")))
		}
		if len(extra) > 0 {
			errs = append(errs, fmt.Errorf("unreferenced secrets present: %s", strings.Join(extra, ", ")))
		}
	}
	return errors.Join(errs...)
}

// canonicalizeSet makes the encoding of a fresh set deterministic (see
// canonicalize). It mutates: call it only on resources not yet served.
func canonicalizeSet(s envoy.Set) error {
	for _, typeURL := range sortedKeys(s) {
		for _, name := range sortedKeys(s[typeURL]) {
			if r := s[typeURL][name]; r != nil {
				if err := canonicalize(r.ProtoReflect()); err != nil {
					return fmt.Errorf("%s %q: %w", TypeName(typeURL), name, err)
				}
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
