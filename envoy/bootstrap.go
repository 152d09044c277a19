package envoy

import (
	"errors"
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
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	downstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	fixedheapv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
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

// Overload manager defaults, from Envoy's edge proxy best practices
// (docs/root/configuration/best_practices/_include/edge.yaml): shrink the
// heap at 95% of a 2 GiB budget, answer new requests 503 at 98%; and the
// global downstream connection limit of that page, 50000, as the
// envoy.resource_monitors.global_downstream_max_connections monitor that
// replaces its deprecated runtime key overload.global_downstream_max_connections.
// Envoy recommends a connection limit below half the process's file
// descriptor limit: raise `ulimit -n` above 100000, or lower the limit.
const (
	DefaultMaxHeapBytes             uint64 = 2 << 30
	DefaultMaxDownstreamConnections int64  = 50000

	FixedHeapMonitor       = "envoy.resource_monitors.fixed_heap"
	DownstreamConnsMonitor = "envoy.resource_monitors.global_downstream_max_connections"
	shrinkHeapAt           = 0.95
	stopAcceptingAt        = 0.98
)

// BootstrapOptions shapes an Envoy bootstrap. Zero fields take the defaults.
type BootstrapOptions struct {
	NodeID       string
	NodeCluster  string
	XDSAddress   string // unix:///path, or host:port; ADS bootstrap only
	AdminAddress string // host:port; keep it on loopback
	// XDSTLS makes Envoy reach certplane over mutual TLS (ADS bootstrap
	// only): what a TCP address needs unless certplane serve runs with
	// --insecure-xds.
	XDSTLS *XDSClientTLS
	// MaxHeapBytes and MaxDownstreamConnections tune the overload manager;
	// zero takes DefaultMaxHeapBytes and DefaultMaxDownstreamConnections.
	MaxHeapBytes             uint64
	MaxDownstreamConnections int64
}

// XDSClientTLS is Envoy's side of xDS mTLS: files Envoy reads at start,
// never inline, so the bootstrap holds no key.
type XDSClientTLS struct {
	CertFile, KeyFile string // Envoy's client certificate chain and its key
	CAFile            string // the CA that issued certplane serve's certificate
	// ServerName is a DNS name or an IP address of certplane serve's
	// certificate: Envoy checks it as a SAN, and sends a DNS name as SNI.
	ServerName string
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
	if o.MaxHeapBytes == 0 {
		o.MaxHeapBytes = DefaultMaxHeapBytes
	}
	if o.MaxDownstreamConnections == 0 {
		o.MaxDownstreamConnections = DefaultMaxDownstreamConnections
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
	if o.XDSTLS != nil {
		if xds.TransportSocket, err = xdsTransportSocket(*o.XDSTLS); err != nil {
			return nil, err
		}
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

// xdsTransportSocket is the TLS Envoy dials certplane with: its client
// certificate, certplane's CA and name, HTTP/2 by ALPN, TLS 1.3.
func xdsTransportSocket(t XDSClientTLS) (*corev3.TransportSocket, error) {
	if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" || t.ServerName == "" {
		return nil, errors.New("xds mTLS needs Envoy's client certificate, its key, the CA of certplane's certificate and certplane's name")
	}
	file := func(p string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: p}}
	}
	san := &tlsv3.SubjectAltNameMatcher{
		SanType: tlsv3.SubjectAltNameMatcher_DNS,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: t.ServerName}},
	}
	sni := t.ServerName
	if net.ParseIP(t.ServerName) != nil {
		// An IP literal is no SNI (RFC 6066); it is checked as an IP SAN.
		san.SanType, sni = tlsv3.SubjectAltNameMatcher_IP_ADDRESS, ""
	}
	up, err := typed(&tlsv3.UpstreamTlsContext{
		Sni: sni,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols: []string{"h2"},
			TlsParams:     &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
			TlsCertificates: []*tlsv3.TlsCertificate{{
				CertificateChain: file(t.CertFile),
				PrivateKey:       file(t.KeyFile),
			}},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa:                 file(t.CAFile),
				MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{san},
			}},
		},
	})
	if err != nil {
		return nil, err
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: up}}, nil
}

// OverloadManager is Envoy's edge protection (see the defaults above): it
// sheds load before Envoy runs out of memory, and refuses connections past
// a global limit, whatever the listeners.
func OverloadManager(o BootstrapOptions) (*overloadv3.OverloadManager, error) {
	o = o.withDefaults()
	heap, err := typed(&fixedheapv3.FixedHeapConfig{MaxHeapSizeBytes: o.MaxHeapBytes})
	if err != nil {
		return nil, err
	}
	conns, err := typed(&downstreamv3.DownstreamConnectionsConfig{MaxActiveDownstreamConnections: o.MaxDownstreamConnections})
	if err != nil {
		return nil, err
	}
	onHeap := func(at float64) []*overloadv3.Trigger {
		return []*overloadv3.Trigger{{
			Name:         FixedHeapMonitor,
			TriggerOneof: &overloadv3.Trigger_Threshold{Threshold: &overloadv3.ThresholdTrigger{Value: at}},
		}}
	}
	return &overloadv3.OverloadManager{
		RefreshInterval: durationpb.New(250 * time.Millisecond),
		ResourceMonitors: []*overloadv3.ResourceMonitor{
			{Name: FixedHeapMonitor, ConfigType: &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: heap}},
			// A proactive monitor: Envoy consults it on every accept, no
			// trigger needed.
			{Name: DownstreamConnsMonitor, ConfigType: &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: conns}},
		},
		Actions: []*overloadv3.OverloadAction{
			{Name: "envoy.overload_actions.shrink_heap", Triggers: onHeap(shrinkHeapAt)},
			{Name: "envoy.overload_actions.stop_accepting_requests", Triggers: onHeap(stopAcceptingAt)},
		},
	}, nil
}

// baseBootstrap holds what both bootstraps share: the node, the overload
// manager, and the admin interface, on loopback, logging its requests to
// stderr so they stay apart from the JSON traffic logs on stdout.
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
	om, err := OverloadManager(o)
	if err != nil {
		return nil, err
	}
	return &bootstrapv3.Bootstrap{
		Node:            &corev3.Node{Id: o.NodeID, Cluster: o.NodeCluster},
		OverloadManager: om,
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
