package proxy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/proxy/mtls"
	"github.com/certplane/certplane/xds/client"
)

// builder turns one set of accepted resources into the next state.
type builder struct {
	prev        *state
	next        *state
	secrets     map[string]*secret
	mtlsOptions mtls.Options
	// runtimes gives the long-lived cluster runtimes (hosts survive
	// updates); the build only reads them (see commitRuntimes).
	runtimes map[string]*clusterRuntime
	// problems collects per-resource errors that kept a previous version.
	problems map[string]string
	// parsedBytes is the wire size of the Secrets parsed anew (see
	// largeSecretBytes).
	parsedBytes int
	// validated holds the Secrets that the check of this very change
	// parsed (see Proxy.Prepare).
	validated map[*tlsv3.Secret]*secret
}

// build makes the next state. A listener or cluster that cannot be built
// (a referenced resource is missing, or its inputs are wrong) keeps its
// previous version, as Envoy's warming does; one that never built is absent.
func (b *builder) build(res client.Resources) *state {
	b.next = emptyState()
	b.next.res = res
	b.problems = map[string]string{}
	b.secrets = b.next.secrets
	for name, s := range res.Secrets {
		d, ok := res.SecretDigests[name]
		if !ok {
			d = client.SecretDigest(s)
		}
		if old := b.prev.secrets[name]; old != nil && old.digest == d {
			b.next.secrets[name] = old
			continue
		}
		ps, err := b.validated[s], error(nil)
		switch {
		case ps != nil:
			b.parsedBytes += proto.Size(s)
		case res.ReleasedSecrets[name]:
			// Its CRL is gone and what was parsed from it is not ours:
			// never parse the rest as a Secret without CRL (fail open).
			err = errors.New("content released before it was applied; waiting for the control plane to send it again")
		default:
			b.parsedBytes += proto.Size(s)
			ps, err = parseSecret(s)
		}
		if err == nil {
			ps.digest = d
		}
		if err != nil {
			b.problems["secret/"+name] = err.Error()
			if old := b.prev.secrets[name]; old != nil {
				b.next.secrets[name] = old
			}
			continue
		}
		b.next.secrets[name] = ps
	}
	for name, rc := range res.Routes {
		t, err := buildRoutes(rc)
		if err != nil {
			b.problems["route/"+name] = err.Error()
			if old := b.prev.routes[name]; old != nil {
				b.next.routes[name] = old
			}
			continue
		}
		t.version = res.Versions[name]
		b.next.routes[name] = t
	}
	for name, c := range res.Clusters {
		cs, err := b.buildCluster(c, res)
		if err != nil {
			b.keepCluster(name, err)
			continue
		}
		b.next.clusters[name] = cs
	}
	for name, l := range res.Listeners {
		ls, err := b.buildListener(l)
		if err == nil {
			err = b.routesPresent(ls)
		}
		if err != nil {
			var miss *missingError
			if errors.As(err, &miss) {
				b.next.warming[name] = miss.what
			} else {
				b.problems["listener/"+name] = err.Error()
			}
			if old := b.prev.listeners[name]; old != nil {
				b.next.listeners[name] = old
				b.keepRoutesOf(old)
			}
			continue
		}
		b.next.listeners[name] = ls
	}
	return b.next
}

func (b *builder) keepCluster(name string, err error) {
	var miss *missingError
	if !errors.As(err, &miss) {
		b.problems["cluster/"+name] = err.Error()
	}
	if old := b.prev.clusters[name]; old != nil {
		b.next.clusters[name] = old
	}
}

// routesPresent makes a listener warm until its RouteConfigurations exist,
// and until the clusters those routes name exist and are warm. Envoy
// initialises clusters before listeners at startup, so its first request
// never meets a missing or unchecked cluster; warming on clusters gives the
// proxy the same start (no 503s while CDS or the first health checks are
// still on their way).
func (b *builder) routesPresent(ls *listenerState) error {
	for _, c := range append(append([]*chainState{}, ls.chains...), ls.def) {
		if c == nil {
			continue
		}
		rt := b.next.routes[c.hcm.routeName]
		if rt == nil {
			return &missingError{"route configuration " + c.hcm.routeName}
		}
		for _, vh := range rt.vhosts {
			for _, r := range vh.routes {
				if r.direct != nil {
					continue
				}
				cs := b.next.clusters[r.cluster]
				if cs == nil {
					return &missingError{"cluster " + r.cluster}
				}
				if cs.warming() {
					return &missingError{"first health check of cluster " + r.cluster}
				}
			}
		}
	}
	return nil
}

// keepRoutesOf keeps the routes an old listener version uses if they left.
func (b *builder) keepRoutesOf(ls *listenerState) {
	for _, c := range append(append([]*chainState{}, ls.chains...), ls.def) {
		if c == nil {
			continue
		}
		if b.next.routes[c.hcm.routeName] == nil && b.prev.routes[c.hcm.routeName] != nil {
			b.next.routes[c.hcm.routeName] = b.prev.routes[c.hcm.routeName]
		}
	}
}

// sortedKeys lists a map's keys in order, for deterministic logs and status.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:12])
}
