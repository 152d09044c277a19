package client

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Type URLs of the typed configs that carry references to other resources.
// Envoy picks a filter's or transport socket's factory by the type of its
// typed_config, not by its name, so the client does the same.
const (
	hcmURL        = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	downstreamURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	upstreamURL   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
)

// refs is the set of by-name resources that the wildcard resources reference.
type refs struct {
	routes    map[string]struct{}
	endpoints map[string]struct{}
	secrets   map[string]struct{}
}

func newRefs() refs {
	return refs{routes: map[string]struct{}{}, endpoints: map[string]struct{}{}, secrets: map[string]struct{}{}}
}

// listenerRefs adds what one Listener references, as Envoy subscribes to
// them: the RDS route_config_name of every HttpConnectionManager, and every
// SDS secret of every DownstreamTlsContext, in the filter chains and the
// default filter chain. A secret reference without sds_config (a static
// secret in Envoy) is subscribed too: the proxy has no static secrets, and an
// unsubscribed secret in the server's snapshot would stall SDS for good
// under go-control-plane's ADS by-name rule.
func listenerRefs(l *listenerv3.Listener, out refs) error {
	chains := l.GetFilterChains()
	if dc := l.GetDefaultFilterChain(); dc != nil {
		chains = append(chains[:len(chains):len(chains)], dc)
	}
	for i, fc := range chains {
		where := fmt.Sprintf("filter chain %d", i)
		if fc.GetName() != "" {
			where = fmt.Sprintf("filter chain %q", fc.GetName())
		}
		if i == len(l.GetFilterChains()) {
			where = "default filter chain"
		}
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc.GetTypeUrl() != hcmURL {
				continue
			}
			hcm := new(hcmv3.HttpConnectionManager)
			if err := unpack(tc, hcm); err != nil {
				return fmt.Errorf("%s: filter %q: %w", where, f.GetName(), err)
			}
			if name := hcm.GetRds().GetRouteConfigName(); name != "" {
				out.routes[name] = struct{}{}
			}
		}
		if err := transportSocketRefs(fc.GetTransportSocket(), downstreamURL, out); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	return nil
}

// clusterRefs adds what one Cluster references: its ClusterLoadAssignment
// when it is an EDS cluster (named by eds_cluster_config.service_name, or
// else by the cluster's own name) and the SDS secrets of its
// UpstreamTlsContexts, including those of transport_socket_matches.
func clusterRefs(c *clusterv3.Cluster, out refs) error {
	if c.GetType() == clusterv3.Cluster_EDS {
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.GetName()
		}
		out.endpoints[name] = struct{}{}
	}
	if err := transportSocketRefs(c.GetTransportSocket(), upstreamURL, out); err != nil {
		return err
	}
	for _, m := range c.GetTransportSocketMatches() {
		if err := transportSocketRefs(m.GetTransportSocket(), upstreamURL, out); err != nil {
			return fmt.Errorf("transport socket match %q: %w", m.GetName(), err)
		}
	}
	return nil
}

func transportSocketRefs(ts *corev3.TransportSocket, wantURL string, out refs) error {
	tc := ts.GetTypedConfig()
	if tc.GetTypeUrl() != wantURL {
		return nil
	}
	var common *tlsv3.CommonTlsContext
	switch wantURL {
	case downstreamURL:
		d := new(tlsv3.DownstreamTlsContext)
		if err := unpack(tc, d); err != nil {
			return fmt.Errorf("transport socket %q: %w", ts.GetName(), err)
		}
		addSecret(out, d.GetSessionTicketKeysSdsSecretConfig())
		common = d.GetCommonTlsContext()
	default:
		u := new(tlsv3.UpstreamTlsContext)
		if err := unpack(tc, u); err != nil {
			return fmt.Errorf("transport socket %q: %w", ts.GetName(), err)
		}
		common = u.GetCommonTlsContext()
	}
	for _, s := range common.GetTlsCertificateSdsSecretConfigs() {
		addSecret(out, s)
	}
	addSecret(out, common.GetValidationContextSdsSecretConfig())
	addSecret(out, common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig())
	return nil
}

func addSecret(out refs, s *tlsv3.SdsSecretConfig) {
	if s.GetName() != "" {
		out.secrets[s.GetName()] = struct{}{}
	}
}

// unpack decodes a typed config with the same checks as a resource: a
// reference the client follows must be valid, or the resource is NACKed.
func unpack(a *anypb.Any, m proto.Message) error {
	name := m.ProtoReflect().Descriptor().FullName()
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return fmt.Errorf("decode %s: %w", name, err)
	}
	return checkMessage(m)
}
