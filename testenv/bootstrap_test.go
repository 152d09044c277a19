package testenv

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	downstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	fixedheapv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/certplane/certplane/envoy"
)

// loadBootstrap parses envoy-bootstrap.yaml the way Envoy does: YAML to JSON
// to the v3 Bootstrap proto, rejecting unknown fields, then runs the
// protoc-gen-validate rules Envoy enforces at startup.
func loadBootstrap(t *testing.T) *bootstrapv3.Bootstrap {
	t.Helper()
	raw, err := os.ReadFile("envoy-bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("envoy-bootstrap.yaml: %v", err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("envoy-bootstrap.yaml: to JSON: %v", err)
	}
	// The typed_config Any fields resolve through the global registry; these
	// imports register the extension types the bootstrap uses.
	_ = &tlsv3.UpstreamTlsContext{}
	_ = &httpv3.HttpProtocolOptions{}
	_ = &streamv3.StderrAccessLog{}
	_ = &fixedheapv3.FixedHeapConfig{}
	_ = &downstreamv3.DownstreamConnectionsConfig{}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		t.Fatalf("envoy-bootstrap.yaml: not a valid v3 Bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("envoy-bootstrap.yaml: %v", err)
	}
	if err := envoy.Validate(b); err != nil {
		t.Fatalf("envoy-bootstrap.yaml: typed configs: %v", err)
	}
	return b
}

// TestEnvoyBootstrapOverloadManager: the testenv Envoy has the same
// overload manager as the bootstrap certplane renders.
func TestEnvoyBootstrapOverloadManager(t *testing.T) {
	want, err := envoy.OverloadManager(envoy.BootstrapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, loadBootstrap(t).GetOverloadManager(), protocmp.Transform()); diff != "" {
		t.Errorf("overload_manager differs from envoy.OverloadManager (-want +file):\n%s", diff)
	}
}

func TestEnvoyBootstrapXDSOverMutualTLS(t *testing.T) {
	b := loadBootstrap(t)

	ads := b.GetDynamicResources().GetAdsConfig()
	if got := ads.GetApiType().String(); got != "GRPC" {
		t.Errorf("ads_config.api_type = %s, want GRPC", got)
	}
	if len(ads.GetGrpcServices()) != 1 || ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != "certplane_xds" {
		t.Errorf("ads_config.grpc_services = %v, want one envoy_grpc to certplane_xds", ads.GetGrpcServices())
	}
	if b.GetDynamicResources().GetLdsConfig().GetAds() == nil || b.GetDynamicResources().GetCdsConfig().GetAds() == nil {
		t.Error("lds_config and cds_config must both come over ADS")
	}

	clusters := b.GetStaticResources().GetClusters()
	if len(clusters) != 1 {
		t.Fatalf("static clusters = %d, want exactly the xDS cluster", len(clusters))
	}
	c := clusters[0]
	if c.GetName() != "certplane_xds" {
		t.Fatalf("static cluster %q, want certplane_xds", c.GetName())
	}
	sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "certplane" || sa.GetPortValue() != 18000 {
		t.Errorf("xDS endpoint = %s:%d, want certplane:18000 (the compose service)", sa.GetAddress(), sa.GetPortValue())
	}

	opts := &httpv3.HttpProtocolOptions{}
	if err := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(opts); err != nil {
		t.Fatalf("xDS cluster protocol options: %v", err)
	}
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("the xDS cluster must speak HTTP/2 (gRPC)")
	}

	ctx := envoyXDSContext(t, b)
	if n := len(ctx.GetTlsCertificates()); n != 1 {
		t.Fatalf("tls_certificates = %d, want Envoy's xDS client certificate", n)
	}
	cert := ctx.GetTlsCertificates()[0]
	vc := ctx.GetValidationContext()
	files := map[string]string{
		"certificate_chain": cert.GetCertificateChain().GetFilename(),
		"private_key":       cert.GetPrivateKey().GetFilename(),
		"trusted_ca":        vc.GetTrustedCa().GetFilename(),
	}
	want := map[string]string{
		"certificate_chain": "/data/xds/clients/envoy.crt",
		"private_key":       "/data/xds/clients/envoy.key",
		"trusted_ca":        "/data/xds/ca/ca.crt",
	}
	for k, w := range want {
		if files[k] != w {
			t.Errorf("%s = %q, want %q (written by the pki-xds services)", k, files[k], w)
		}
	}
	sans := vc.GetMatchTypedSubjectAltNames()
	if len(sans) != 1 || sans[0].GetSanType().String() != "DNS" || sans[0].GetMatcher().GetExact() != "certplane" {
		t.Errorf("match_typed_subject_alt_names = %v, want DNS exact certplane", sans)
	}
	if strings.Contains(ctx.String(), "inline") {
		t.Error("xDS credentials must be files from the volume, never inline")
	}
}

// envoyXDSContext returns the TLS context Envoy dials certplane with, after
// checking it is a TLS transport socket with SNI "certplane".
func envoyXDSContext(t *testing.T, b *bootstrapv3.Bootstrap) *tlsv3.CommonTlsContext {
	t.Helper()
	ts := b.GetStaticResources().GetClusters()[0].GetTransportSocket()
	if ts.GetName() != "envoy.transport_sockets.tls" {
		t.Fatalf("xDS transport socket %q, want envoy.transport_sockets.tls", ts.GetName())
	}
	up := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(up); err != nil {
		t.Fatalf("xDS transport socket: %v", err)
	}
	if up.GetSni() != "certplane" {
		t.Errorf("sni = %q, want certplane (the SAN of the control plane's certificate)", up.GetSni())
	}
	return up.GetCommonTlsContext()
}
