package envoy

import (
	"os"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"

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
	sa := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 18000 {
		t.Errorf("xds cluster points at %v, want 127.0.0.1:18000", sa)
	}
	if _, ok := xds.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; !ok {
		t.Error("xds cluster lacks HTTP/2 typed_extension_protocol_options")
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
	b, err := ADSBootstrap(BootstrapOptions{XDSAddress: "unix:///run/certplane/xds.sock", NodeID: "edge-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(b); err != nil {
		t.Fatal(err)
	}
	ep := b.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint()
	if got := ep.GetAddress().GetPipe().GetPath(); got != "/run/certplane/xds.sock" {
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
	} {
		_, err := ADSBootstrap(tc.opts)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ADSBootstrap(%+v) error %v, want %q", tc.opts, err, tc.want)
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
