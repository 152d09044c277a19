package proxy

import (
	"errors"
	"fmt"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/xds/client"
)

// Validate is the xDS client's Validator: a non-nil error NACKs the whole
// response with the error text as error_detail. It refuses any field the
// proxy does not implement, and anything Envoy itself would reject (bad PEM,
// an invalid validation context, an unknown cipher, a bad header format).
// Cross-type checks (a listener's validation context merged with its trust
// secret) use the last accepted resources of the other types.
func (p *Proxy) Validate(typeURL string, resources []proto.Message) error {
	_, err := p.check(resources, p.state.Load(), true)
	return err
}

// check is Validate against the state cur. It returns the Secrets it
// parsed, by message identity, for the build of the candidate state.
// Without buildAll it leaves out the checks that are a build of the
// resource itself (listeners, route configurations): Prepare takes their
// errors from the candidate's build instead (builtErrors), so that an
// accepted update builds them once.
func (p *Proxy) check(resources []proto.Message, cur *state, buildAll bool) (map[*tlsv3.Secret]*secret, error) {
	var errs []string
	var newSecrets map[string]*secret
	for _, r := range resources {
		kind, name := describe(r)
		what := fmt.Sprintf("%s %q", kind, name)
		if err := checkFields(what, r); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		var err error
		switch m := r.(type) {
		case *listenerv3.Listener:
			if buildAll {
				err = p.checkListener(m, cur.secrets)
			}
		case *routev3.RouteConfiguration:
			if buildAll {
				_, err = buildRoutes(m)
			}
		case *clusterv3.Cluster:
			err = checkClusterAgainst(m, cur.secrets)
		case *endpointv3.ClusterLoadAssignment:
			_, err = claEndpoints(m)
		case *tlsv3.Secret:
			var s *secret
			if old := cur.secrets[m.GetName()]; old != nil && old.digest == client.SecretDigest(m) {
				// Sent again unchanged (SotW resends every Secret; a
				// reconnect too): accepted before, and a 1M-serial CRL is
				// not parsed again.
				s = old
			} else {
				s, err = parseSecret(m)
			}
			if err == nil {
				if newSecrets == nil {
					newSecrets = map[string]*secret{}
				}
				newSecrets[m.GetName()] = s
			}
		default:
			err = fmt.Errorf("resource type %T is not implemented by certplane proxy", r)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", what, err))
		}
	}
	if len(errs) == 0 && newSecrets != nil {
		// The listeners and clusters already accepted must still build with
		// the new secrets; otherwise the secret update is what Envoy rejects.
		for _, name := range sortedKeys(cur.res.Listeners) {
			if err := p.checkListener(cur.res.Listeners[name], newSecrets); err != nil {
				errs = append(errs, fmt.Sprintf("secrets: listener %q would be rejected: %v", name, err))
			}
		}
		for _, name := range sortedKeys(cur.res.Clusters) {
			if err := checkClusterAgainst(cur.res.Clusters[name], newSecrets); err != nil {
				errs = append(errs, fmt.Sprintf("secrets: cluster %q would be rejected: %v", name, err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	var parsed map[*tlsv3.Secret]*secret
	if newSecrets != nil {
		parsed = make(map[*tlsv3.Secret]*secret, len(newSecrets))
		for _, r := range resources {
			if m, ok := r.(*tlsv3.Secret); ok && newSecrets[m.GetName()] != nil {
				parsed[m] = newSecrets[m.GetName()]
			}
		}
	}
	return parsed, nil
}

// builtErrors are the errors that check without buildAll left out, as
// check words them, taken from the problems of the candidate built from
// the change: the candidate builds each listener and route configuration
// of resources with the same secrets as check would (those of the served
// state, which a Listener or RDS change does not alter).
func builtErrors(resources []proto.Message, c *candidate) error {
	var errs []string
	for _, r := range resources {
		var key string
		switch m := r.(type) {
		case *listenerv3.Listener:
			key = "listener/" + m.GetName()
		case *routev3.RouteConfiguration:
			key = "route/" + m.GetName()
		default:
			continue
		}
		if problem, ok := c.problems[key]; ok {
			kind, name := describe(r)
			errs = append(errs, fmt.Sprintf("%s %q: %s", kind, name, problem))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// checkListener builds the listener against secrets; a missing resource is
// not an error (the listener warms), anything else is.
func (p *Proxy) checkListener(l *listenerv3.Listener, secrets map[string]*secret) error {
	b := &builder{prev: emptyState(), next: emptyState(), secrets: secrets, mtlsOptions: p.mtlsOptions}
	_, err := b.buildListener(l)
	var miss *missingError
	if errors.As(err, &miss) {
		return nil
	}
	return err
}

func checkClusterAgainst(c *clusterv3.Cluster, secrets map[string]*secret) error {
	spec, err := checkCluster(c)
	if err != nil || spec.upstream == nil {
		return err
	}
	_, err = buildUpstreamTLS(spec.upstream, secrets)
	var miss *missingError
	if errors.As(err, &miss) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("transport_socket: %w", err)
	}
	return nil
}

// describe names a resource for error messages.
func describe(r proto.Message) (kind, name string) {
	switch m := r.(type) {
	case *listenerv3.Listener:
		return "listener", m.GetName()
	case *routev3.RouteConfiguration:
		return "route configuration", m.GetName()
	case *clusterv3.Cluster:
		return "cluster", m.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return "cluster load assignment", m.GetClusterName()
	case *tlsv3.Secret:
		return "secret", m.GetName()
	}
	return string(r.ProtoReflect().Descriptor().FullName()), ""
}
