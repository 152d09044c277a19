package envoy

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/certplane/certplane/config"
)

// Bootstrap defaults, shared with bootstrap.yaml at the repository root.
const (
	DefaultNodeID      = "sidecar"
	DefaultNodeCluster = "certplane"
	// DefaultXDSSocket is where certplane serve listens unless told
	// otherwise: a mode-0600 unix socket in the runtime directory a service
	// manager gives a sidecar (systemd: RuntimeDirectory=certplane). The
	// xDS stream carries private keys; a socket has an owner, TCP has none.
	DefaultXDSSocket    = "/run/certplane/xds.sock"
	DefaultXDSAddress   = "unix://" + DefaultXDSSocket
	DefaultAdminAddress = "127.0.0.1:9901"
	// XDSClusterName is the static cluster Envoy reaches certplane through.
	XDSClusterName = "certplane_xds"
)

// BootstrapOptions shapes an Envoy bootstrap. Zero fields take the defaults.
type BootstrapOptions struct {
	NodeID       string
	NodeCluster  string
	XDSAddress   string // host:port, or unix:///path; ADS bootstrap only
	AdminAddress string // host:port; keep it on loopback
}

func (o BootstrapOptions) withDefaults() BootstrapOptions {
	if o.NodeID == "" {
		o.NodeID = DefaultNodeID
	}
	if o.NodeCluster == "" {
		o.NodeCluster = DefaultNodeCluster
	}
	if o.XDSAddress == "" {
		o.XDSAddress = DefaultXDSAddress
	}
	if o.AdminAddress == "" {
		o.AdminAddress = DefaultAdminAddress
	}
	return o
}

// ADSBootstrap is the bootstrap of an Envoy fed by certplane serve: every
// listener, cluster, route, endpoint and secret comes over one ADS stream.
func ADSBootstrap(o BootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	o = o.withDefaults()
	xdsAddr, err := Address(o.XDSAddress)
	if err != nil {
		return nil, fmt.Errorf("xds address: %w", err)
	}
	h2, err := typed(&upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					// Keepalive notices a dead control plane, so Envoy reconnects.
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
						ConnectionKeepalive: &corev3.KeepaliveSettings{
							Interval: durationpb.New(30 * time.Second),
							Timeout:  durationpb.New(5 * time.Second),
						},
					},
				},
			},
		},
	})
	if err != nil {
		return nil, err
	}
	xds := &clusterv3.Cluster{
		Name:                 XDSClusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: XDSClusterName,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: xdsAddr}},
			}}}},
		},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2,
		},
	}
	b, err := baseBootstrap(o)
	if err != nil {
		return nil, err
	}
	b.DynamicResources = &bootstrapv3.Bootstrap_DynamicResources{
		AdsConfig: &corev3.ApiConfigSource{
			ApiType:             corev3.ApiConfigSource_GRPC,
			TransportApiVersion: corev3.ApiVersion_V3,
			GrpcServices: []*corev3.GrpcService{{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSClusterName}},
			}},
		},
		LdsConfig: ads(),
		CdsConfig: ads(),
	}
	b.StaticResources = &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{xds}}
	return b, nil
}

// StaticBootstrap is a complete Envoy config for model m with no control
// plane: the same resources certplane serves, with routes, endpoints and
// secrets inline (Options.Static). Every listener must translate: a partial
// config is never produced.
func StaticBootstrap(m *config.Model, o BootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	o = o.withDefaults()
	var sets []Set
	t := NewTranslator(m)
	for _, l := range m.Listeners {
		s, err := t.unit(l, Options{Static: true})
		if err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	all, err := Merge(sets...)
	if err != nil {
		return nil, err
	}
	b, err := baseBootstrap(o)
	if err != nil {
		return nil, err
	}
	sr := &bootstrapv3.Bootstrap_StaticResources{}
	for _, r := range all.Sorted(resource.ListenerType) {
		sr.Listeners = append(sr.Listeners, r.(*listenerv3.Listener))
	}
	for _, r := range all.Sorted(resource.ClusterType) {
		sr.Clusters = append(sr.Clusters, r.(*clusterv3.Cluster))
	}
	for _, r := range all.Sorted(resource.SecretType) {
		sr.Secrets = append(sr.Secrets, r.(*tlsv3.Secret))
	}
	b.StaticResources = sr
	return b, nil
}

// baseBootstrap holds what both bootstraps share: the node and the admin
// interface, on loopback, logging its requests to stderr so they stay apart
// from the JSON traffic logs on stdout.
func baseBootstrap(o BootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	adminAddr, err := Address(o.AdminAddress)
	if err != nil {
		return nil, fmt.Errorf("admin address: %w", err)
	}
	if sa := adminAddr.GetSocketAddress(); sa != nil {
		if ip := net.ParseIP(sa.GetAddress()); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("admin address %q: the admin interface can stop Envoy and dump its secrets; keep it on a loopback IP", o.AdminAddress)
		}
	}
	stderr, err := typed(&streamv3.StderrAccessLog{})
	if err != nil {
		return nil, err
	}
	return &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: o.NodeID, Cluster: o.NodeCluster},
		Admin: &bootstrapv3.Admin{
			Address: adminAddr,
			AccessLog: []*accesslogv3.AccessLog{{
				Name:       "envoy.access_loggers.stderr",
				ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: stderr},
			}},
		},
	}, nil
}

// Address parses host:port (IP literal host) or unix:///path into an Envoy
// address.
func Address(s string) (*corev3.Address, error) {
	if path, ok := strings.CutPrefix(s, "unix://"); ok {
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("%q: a unix socket address is unix:///absolute/path", s)
		}
		return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path}}}, nil
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("%q: want host:port or unix:///path: %w", s, err)
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("%q: host must be an IP address", s)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("%q: port must be 1-65535", s)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}, nil
}
