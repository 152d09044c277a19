package proxy

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
)

// clusterState is one cluster of one state.
type clusterState struct {
	name           string
	hosts          []*host
	rt             *clusterRuntime
	transport      *upstreamTransport
	transportKey   string
	scheme         string // "https" with an UpstreamTlsContext
	connectTimeout time.Duration
	hc             *hcConfig
	outlier        *outlierConfig
	// panicThreshold is healthy_panic_threshold in percent (Envoy: 50;
	// certplane sends 0, which turns panic mode off).
	panicThreshold float64
	// secrets names the SDS secrets the upstream TLS context uses.
	secrets []string
	lb      lbPolicy
}

// warming reports whether the cluster waits for its first health-check
// round. Envoy's cluster warming (docs: intro/arch_overview/upstream/
// cluster_manager.rst, "Cluster warming") ends after the "initial active
// health check pass if active health checking is configured", in which
// "Envoy will send a health check request to each discovered host"; a
// failed or timed-out check ends a host's part as a success does, so the
// wait is bounded by the health check timeout. A cluster whose health
// checking starts now (new, or health checks just added) warms; one that
// is warm stays warm when hosts are added (they get no traffic until
// checked, see buildCluster).
func (c *clusterState) warming() bool {
	return c.hc != nil && len(c.hosts) > 0 && (c.rt.hcKey == "" || !c.rt.warm.Load())
}

// clusterSpec is a Cluster checked on its own, before endpoints and secrets.
type clusterSpec struct {
	eds            bool
	endpoints      []string // inline load_assignment (STATIC, STRICT_DNS)
	network        string   // "tcp", "tcp4", "tcp6" from dns_lookup_family
	v4Preferred    bool
	connectTimeout time.Duration
	hc             *hcConfig
	outlier        *outlierConfig
	upstream       *upstreamSpec
	panicThreshold float64
	// bufferLimit is per_connection_buffer_limit_bytes; 0 when unset.
	bufferLimit int
	lb          lbPolicy
}

func checkCluster(c *clusterv3.Cluster) (*clusterSpec, error) {
	s := &clusterSpec{network: "tcp", connectTimeout: 5 * time.Second, lb: lbPolicyOf(c.GetLbPolicy())}
	if ct := c.GetConnectTimeout(); ct != nil {
		if err := ct.CheckValid(); err != nil || ct.AsDuration() <= 0 {
			return nil, errors.New("connect_timeout must be a positive duration")
		}
		s.connectTimeout = ct.AsDuration()
	}
	switch c.GetType() {
	case clusterv3.Cluster_EDS:
		s.eds = true
		if c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
			return nil, errors.New("eds_cluster_config.eds_config must be ADS")
		}
	case clusterv3.Cluster_STATIC, clusterv3.Cluster_STRICT_DNS:
		eps, err := claEndpoints(c.GetLoadAssignment())
		if err != nil {
			return nil, fmt.Errorf("load_assignment: %w", err)
		}
		s.endpoints = eps
	default:
		return nil, fmt.Errorf("type %v is not implemented by certplane proxy", c.GetType())
	}
	switch c.GetDnsLookupFamily() {
	case clusterv3.Cluster_V4_ONLY:
		s.network = "tcp4"
	case clusterv3.Cluster_V6_ONLY:
		s.network = "tcp6"
	case clusterv3.Cluster_V4_PREFERRED:
		s.v4Preferred = true
	}
	for i, hc := range c.GetHealthChecks() {
		if i > 0 {
			return nil, errors.New("health_checks: more than one health check is not implemented by certplane proxy")
		}
		cfg, err := buildHealthCheck(hc)
		if err != nil {
			return nil, fmt.Errorf("health_checks[0]: %w", err)
		}
		s.hc = cfg
	}
	od, err := buildOutlier(c.GetOutlierDetection())
	if err != nil {
		return nil, err
	}
	s.outlier = od
	s.panicThreshold = envoyPanicThreshold
	if p := c.GetCommonLbConfig().GetHealthyPanicThreshold(); p != nil {
		if p.GetValue() < 0 || p.GetValue() > 100 {
			return nil, fmt.Errorf("common_lb_config.healthy_panic_threshold %v is out of range 0..100", p.GetValue())
		}
		s.panicThreshold = p.GetValue()
	}
	if l := c.GetPerConnectionBufferLimitBytes(); l != nil {
		s.bufferLimit = int(l.GetValue())
	}
	if ts := c.GetTransportSocket(); ts != nil {
		up, err := checkUpstreamTLS(ts)
		if err != nil {
			return nil, fmt.Errorf("transport_socket: %w", err)
		}
		s.upstream = up
	}
	return s, nil
}

// claEndpoints lists a ClusterLoadAssignment's endpoints as host:port.
func claEndpoints(cla *endpointv3.ClusterLoadAssignment) ([]string, error) {
	var out []string
	for i, loc := range cla.GetEndpoints() {
		for j, lb := range loc.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil || sa.GetAddress() == "" {
				return nil, fmt.Errorf("endpoints[%d].lb_endpoints[%d]: socket_address is missing", i, j)
			}
			if sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
				return nil, fmt.Errorf("endpoints[%d].lb_endpoints[%d]: port_value %d is out of range", i, j, sa.GetPortValue())
			}
			out = append(out, net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
		}
	}
	return out, nil
}

// socketAddress renders a listener address as host:port.
func socketAddress(a *corev3.Address) (string, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return "", errors.New("address.socket_address is missing")
	}
	if net.ParseIP(sa.GetAddress()) == nil {
		return "", fmt.Errorf("address.socket_address.address %q is not an IP address", sa.GetAddress())
	}
	if sa.GetPortValue() > 65535 {
		return "", fmt.Errorf("address.socket_address.port_value %d is out of range", sa.GetPortValue())
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))), nil
}
