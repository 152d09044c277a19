package envoy

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/certplane/certplane/config"
)

// Cluster defaults, as docs/resources.md states them.
const (
	ConnectTimeout = 5 * time.Second

	OutlierConsecutive5xx     = 5
	OutlierInterval           = 10 * time.Second
	OutlierBaseEjectionTime   = 30 * time.Second
	OutlierMaxEjectionPercent = 50
)

// Cluster balances round robin over backend b's endpoints. IP endpoints come
// by EDS; any DNS name makes the cluster STRICT_DNS with the endpoints inline,
// since EDS carries addresses, not names to resolve.
func Cluster(b *config.Backend, o Options) (*clusterv3.Cluster, error) {
	if len(b.Endpoints) == 0 {
		return nil, fmt.Errorf("backend %q: no endpoints", b.Name)
	}
	c := &clusterv3.Cluster{
		Name:                          b.Name,
		ConnectTimeout:                durationpb.New(ConnectTimeout),
		LbPolicy:                      LBPolicy(b.LBPolicy),
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(PerConnectionBufferLimit),
		// Envoy's default panic threshold (50%) sends traffic to unhealthy
		// hosts when too few are healthy; a load balancer should not. With 0,
		// only healthy hosts get requests and none healthy means 503.
		CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{
			HealthyPanicThreshold: &typev3.Percent{Value: 0},
		},
		OutlierDetection: &clusterv3.OutlierDetection{
			Consecutive_5Xx:    wrapperspb.UInt32(OutlierConsecutive5xx),
			Interval:           durationpb.New(OutlierInterval),
			BaseEjectionTime:   durationpb.New(OutlierBaseEjectionTime),
			MaxEjectionPercent: wrapperspb.UInt32(OutlierMaxEjectionPercent),
			// Success-rate ejection is on by default in Envoy (from 5 hosts
			// with 100 requests per interval); certplane ejects on
			// consecutive 5xx only, so both data planes agree.
			EnforcingSuccessRate: wrapperspb.UInt32(0),
		},
	}
	switch {
	case !allIP(b):
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		c.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
		c.LoadAssignment = ClusterLoadAssignment(b)
	case o.Static:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
		c.LoadAssignment = ClusterLoadAssignment(b)
	default:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()}
	}
	if hc := b.HealthCheck; hc != nil {
		c.HealthChecks = []*corev3.HealthCheck{HealthCheck(hc)}
	}
	if b.TLS != nil {
		tctx, err := UpstreamTLSContext(b.TLS, o)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", b.Name, err)
		}
		ts, err := transportSocket(tctx)
		if err != nil {
			return nil, err
		}
		c.TransportSocket = ts
	}
	return c, nil
}

// LBPolicy is Envoy's lb_policy for p. LEAST_REQUEST keeps Envoy's
// default least_request_lb_config: the less loaded of choice_count 2
// hosts picked at random (power of two choices), as hosts are equally
// weighted.
func LBPolicy(p config.LBPolicy) clusterv3.Cluster_LbPolicy {
	switch p {
	case config.LBLeastRequest:
		return clusterv3.Cluster_LEAST_REQUEST
	case config.LBRandom:
		return clusterv3.Cluster_RANDOM
	}
	return clusterv3.Cluster_ROUND_ROBIN
}

// HealthCheck is an active HTTP health check. Envoy probes an idle cluster
// only every no_traffic_interval (60s by default) until it first carries
// traffic; setting it to the interval keeps the configured cadence, which is
// what the operator wrote and what the fallback proxy does.
func HealthCheck(hc *config.HealthCheck) *corev3.HealthCheck {
	return &corev3.HealthCheck{
		Timeout:            durationpb.New(hc.Timeout),
		Interval:           durationpb.New(hc.Interval),
		NoTrafficInterval:  durationpb.New(hc.Interval),
		HealthyThreshold:   wrapperspb.UInt32(hc.HealthyThreshold),
		UnhealthyThreshold: wrapperspb.UInt32(hc.UnhealthyThreshold),
		HealthChecker: &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
			Path: hc.Path,
		}},
	}
}

// UsesEDS reports whether backend b's Cluster takes its endpoints by EDS
// (all IP literals) and so has a ClusterLoadAssignment resource.
func UsesEDS(b *config.Backend) bool { return allIP(b) }

func allIP(b *config.Backend) bool {
	for _, e := range b.Endpoints {
		if !e.IsIP() {
			return false
		}
	}
	return true
}

// ClusterLoadAssignment lists backend b's endpoints in config order, one
// locality, equal weights.
func ClusterLoadAssignment(b *config.Backend) *endpointv3.ClusterLoadAssignment {
	lle := &endpointv3.LocalityLbEndpoints{}
	for _, e := range b.Endpoints {
		lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Protocol:      corev3.SocketAddress_TCP,
					Address:       e.Host,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.Port},
				}}},
			}},
		})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: b.Name,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{lle},
	}
}
