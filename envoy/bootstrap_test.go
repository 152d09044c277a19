package envoy

import (
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	downstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	fixedheapv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/google/go-cmp/cmp"
)

func readBootstrap(t *testing.T) *bootstrapv3.Bootstrap {
	t.Helper()
	b, err := os.ReadFile("../bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var bs bootstrapv3.Bootstrap
	if err := UnmarshalYAML(b, &bs); err != nil {
		t.Fatalf("bootstrap.yaml: %v", err)
	}
	return &bs
}

func TestBootstrapFile(t *testing.T) {
	bs := readBootstrap(t)
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("bootstrap.yaml: ValidateAll: %v", err)
	}
	if err := Validate(bs); err != nil {
		t.Fatalf("bootstrap.yaml: typed configs: %v", err)
	}
	dep, err := DeprecatedFields(bs)
	if err != nil {
		t.Fatal(err)
	}
	if len(dep) > 0 {
		t.Fatalf("bootstrap.yaml sets deprecated fields: %v", dep)
	}
	if got := bs.GetNode().GetId(); got != "sidecar" {
		t.Errorf("node id %q, want sidecar", got)
	}
	if got := bs.GetNode().GetCluster(); got != "certplane" {
		t.Errorf("node cluster %q, want certplane", got)
	}
	if got := bs.GetAdmin().GetAddress().GetSocketAddress(); got.GetAddress() != "127.0.0.1" || got.GetPortValue() != 9901 {
		t.Errorf("admin on %v, want 127.0.0.1:9901", got)
	}
	if len(bs.GetAdmin().GetAccessLog()) != 1 {
		t.Errorf("admin has %d access logs, want 1", len(bs.GetAdmin().GetAccessLog()))
	}
	dr := bs.GetDynamicResources()
	if dr.GetLdsConfig().GetAds() == nil || dr.GetCdsConfig().GetAds() == nil {
		t.Errorf("LDS and CDS must come over ADS: %v", dr)
	}
	gs := dr.GetAdsConfig().GetGrpcServices()
	if len(gs) != 1 || gs[0].GetEnvoyGrpc().GetClusterName() != XDSClusterName {
		t.Fatalf("ADS must be envoy_grpc to %s: %v", XDSClusterName, gs)
	}
	var xds *clusterv3.Cluster
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() == XDSClusterName {
			xds = c
		}
	}
	if xds == nil {
		t.Fatalf("no static cluster %s", XDSClusterName)
	}
	addr := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()
	if got := addr.GetPipe().GetPath(); got != "/run/certplane/xds.sock" {
		t.Errorf("xds cluster points at %v, want the unix socket /run/certplane/xds.sock", addr)
	}
	if _, ok := xds.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; !ok {
		t.Error("xds cluster lacks HTTP/2 typed_extension_protocol_options")
	}
	checkOverloadManager(t, bs.GetOverloadManager(), DefaultMaxHeapBytes, DefaultMaxDownstreamConnections)
}

// checkOverloadManager checks Envoy's edge recommendation: a fixed_heap
// monitor of maxHeap bytes that shrinks the heap at 95% and stops accepting
// requests at 98%, and the global downstream connection limit.
func checkOverloadManager(t *testing.T, om *overloadv3.OverloadManager, maxHeap uint64, maxConns int64) {
	t.Helper()
	if om.GetRefreshInterval().AsDuration() != 250*time.Millisecond {
		t.Errorf("overload manager refresh_interval %v, want 0.25s", om.GetRefreshInterval().AsDuration())
	}
	monitors := map[string]*anypb.Any{}
	for _, m := range om.GetResourceMonitors() {
		monitors[m.GetName()] = m.GetTypedConfig()
	}
	heap, conns := &fixedheapv3.FixedHeapConfig{}, &downstreamv3.DownstreamConnectionsConfig{}
	if err := monitors["envoy.resource_monitors.fixed_heap"].UnmarshalTo(heap); err != nil || heap.GetMaxHeapSizeBytes() != maxHeap {
		t.Errorf("fixed_heap monitor: %v, %v; want max_heap_size_bytes %d", heap, err, maxHeap)
	}
	if err := monitors["envoy.resource_monitors.global_downstream_max_connections"].UnmarshalTo(conns); err != nil || conns.GetMaxActiveDownstreamConnections() != maxConns {
		t.Errorf("global_downstream_max_connections monitor: %v, %v; want %d", conns, err, maxConns)
	}
	if len(monitors) != 2 {
		t.Errorf("resource monitors %v, want exactly fixed_heap and global_downstream_max_connections", monitors)
	}
	actions := map[string]float64{}
	for _, a := range om.GetActions() {
		if len(a.GetTriggers()) != 1 || a.GetTriggers()[0].GetName() != "envoy.resource_monitors.fixed_heap" {
			t.Errorf("action %s triggers %v, want one on fixed_heap", a.GetName(), a.GetTriggers())
			continue
		}
		actions[a.GetName()] = a.GetTriggers()[0].GetThreshold().GetValue()
	}
	want := map[string]float64{"envoy.overload_actions.shrink_heap": 0.95, "envoy.overload_actions.stop_accepting_requests": 0.98}
	if !maps.Equal(actions, want) {
		t.Errorf("overload actions %v, want %v", actions, want)
	}
}

// The file is hand-written with comments; the code builds the same thing for
// render --ads-bootstrap. They must not drift.
func TestBootstrapFileMatchesADSBootstrap(t *testing.T) {
	want, err := ADSBootstrap(BootstrapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, readBootstrap(t), protocmp.Transform()); diff != "" {
		t.Errorf("bootstrap.yaml differs from ADSBootstrap(defaults) (-code +file):\n%s", diff)
	}
}

func TestADSBootstrapAddresses(t *testing.T) {
	b, err := ADSBootstrap(BootstrapOptions{XDSAddress: "unix:///var/run/edge/xds.sock", NodeID: "edge-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(b); err != nil {
		t.Fatal(err)
	}
	ep := b.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint()
	if got := ep.GetAddress().GetPipe().GetPath(); got != "/var/run/edge/xds.sock" {
		t.Errorf("pipe path %q", got)
	}
	if b.GetNode().GetId() != "edge-1" {
		t.Errorf("node id %q", b.GetNode().GetId())
	}
	for _, tc := range []struct {
		opts BootstrapOptions
		want string
	}{
		{BootstrapOptions{XDSAddress: "unix://relative.sock"}, `xds address: "unix://relative.sock": a unix socket address is unix:///absolute/path`},
		{BootstrapOptions{XDSAddress: "localhost:18000"}, `xds address: "localhost:18000": host must be an IP address`},
		{BootstrapOptions{XDSAddress: "127.0.0.1:0"}, `xds address: "127.0.0.1:0": port must be 1-65535`},
		{BootstrapOptions{AdminAddress: "0.0.0.0:9901"}, `admin address "0.0.0.0:9901": the admin interface can stop Envoy and dump its secrets; keep it on a loopback IP`},
		{BootstrapOptions{XDSAddress: "10.0.0.1:18000", XDSTLS: &XDSClientTLS{CertFile: "c", KeyFile: "k", CAFile: "ca"}}, `xds mTLS needs Envoy's client certificate, its key, the CA of certplane's certificate and certplane's name`},
	} {
		_, err := ADSBootstrap(tc.opts)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ADSBootstrap(%+v) error %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// TestADSBootstrapMutualTLS: over TCP, Envoy presents its client
// certificate and checks certplane's, all as files, with nothing inline.
func TestADSBootstrapMutualTLS(t *testing.T) {
	for _, tc := range []struct {
		name, sni string
		sanType   tlsv3.SubjectAltNameMatcher_SanType
	}{
		{"certplane.internal", "certplane.internal", tlsv3.SubjectAltNameMatcher_DNS},
		{"10.0.0.1", "", tlsv3.SubjectAltNameMatcher_IP_ADDRESS},
	} {
		b, err := ADSBootstrap(BootstrapOptions{XDSAddress: "10.0.0.1:18000", MaxHeapBytes: 1 << 30, MaxDownstreamConnections: 1000,
			XDSTLS: &XDSClientTLS{CertFile: "/etc/envoy/xds.crt", KeyFile: "/etc/envoy/xds.key", CAFile: "/etc/envoy/xds-ca.crt", ServerName: tc.name}})
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(b); err != nil {
			t.Fatalf("ValidateAll: %v", err)
		}
		if dep, err := DeprecatedFields(b); err != nil || len(dep) > 0 {
			t.Errorf("deprecated fields %v, %v", dep, err)
		}
		checkOverloadManager(t, b.GetOverloadManager(), 1<<30, 1000)
		c := b.GetStaticResources().GetClusters()[0]
		sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if sa.GetAddress() != "10.0.0.1" || sa.GetPortValue() != 18000 {
			t.Errorf("xds endpoint %v", sa)
		}
		if c.GetTransportSocket().GetName() != "envoy.transport_sockets.tls" {
			t.Fatalf("transport socket %v", c.GetTransportSocket())
		}
		up := &tlsv3.UpstreamTlsContext{}
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(up); err != nil {
			t.Fatal(err)
		}
		ctc := up.GetCommonTlsContext()
		vc := ctc.GetValidationContext()
		got := []string{up.GetSni(), ctc.GetTlsCertificates()[0].GetCertificateChain().GetFilename(), ctc.GetTlsCertificates()[0].GetPrivateKey().GetFilename(),
			vc.GetTrustedCa().GetFilename(), vc.GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact(), strings.Join(ctc.GetAlpnProtocols(), ",")}
		want := []string{tc.sni, "/etc/envoy/xds.crt", "/etc/envoy/xds.key", "/etc/envoy/xds-ca.crt", tc.name, "h2"}
		if strings.Join(got, " ") != strings.Join(want, " ") || vc.GetMatchTypedSubjectAltNames()[0].GetSanType() != tc.sanType {
			t.Errorf("%s: upstream TLS %v", tc.name, up)
		}
		if ctc.GetTlsParams().GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3 {
			t.Errorf("minimum TLS version %v, want TLSv1_3", ctc.GetTlsParams())
		}
	}
}

// DeprecatedFields must actually see a deprecated field, or the checks above
// prove nothing.
func TestDeprecatedFieldsDetects(t *testing.T) {
	bs := readBootstrap(t)
	bs = proto.Clone(bs).(*bootstrapv3.Bootstrap)
	// Set by reflection: the Go field is itself marked deprecated.
	adm := bs.Admin.ProtoReflect()
	adm.Set(adm.Descriptor().Fields().ByName("access_log_path"), protoreflect.ValueOfString("/dev/null"))
	dep, err := DeprecatedFields(bs)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(dep, ",") != "envoy.config.bootstrap.v3.Admin.access_log_path" {
		t.Errorf("DeprecatedFields = %v", dep)
	}
}
