package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/pki/pkitest"
)

const renderCase = "../../envoy/testdata/upstream-mtls/input"

func render(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = runRender(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

func TestRenderResources(t *testing.T) {
	out, _, err := render(t, "--certs", renderCase+"/certs", "--config", renderCase+"/config")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string][]map[string]any
	if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("output is not YAML: %v", err)
	}
	for key, n := range map[string]int{"listeners": 1, "routes": 1, "clusters": 1, "endpoints": 1, "secrets": 3} {
		if len(doc[key]) != n {
			t.Errorf("%s: %d resources, want %d", key, len(doc[key]), n)
		}
	}
	if strings.Contains(out, "PRIVATE KEY") || strings.Count(out, redactedKey) != 2 {
		t.Errorf("private keys not redacted")
	}
	out, _, err = render(t, "--certs", renderCase+"/certs", "--config", renderCase+"/config", "--show-keys")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, redactedKey) {
		t.Error("--show-keys still redacts")
	}
}

func TestRenderStaticBootstrap(t *testing.T) {
	out, _, err := render(t, "--certs", renderCase+"/certs", "--config", renderCase+"/config", "--bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := envoy.UnmarshalYAML([]byte(out), &b); err != nil {
		t.Fatal(err)
	}
	if err := envoy.Validate(&b); err != nil {
		t.Fatalf("ValidateAll: %v", err)
	}
	sr := b.GetStaticResources()
	if len(sr.GetListeners()) != 1 || len(sr.GetClusters()) != 1 || len(sr.GetSecrets()) != 3 {
		t.Errorf("static resources: %d listeners, %d clusters, %d secrets", len(sr.GetListeners()), len(sr.GetClusters()), len(sr.GetSecrets()))
	}
	if b.GetDynamicResources() != nil {
		t.Error("a static bootstrap has no dynamic_resources")
	}
}

func TestRenderADSBootstrapIsTheRepositoryFile(t *testing.T) {
	out, _, err := render(t, "--ads-bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	var got, want bootstrapv3.Bootstrap
	if err := envoy.UnmarshalYAML([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile("../../bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := envoy.UnmarshalYAML(file, &want); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("render --ads-bootstrap differs from bootstrap.yaml")
	}
}

// renderADS runs render --ads-bootstrap with args and decodes the bootstrap,
// which must pass ValidateAll (typed configs included) and carry the
// overload manager.
func renderADS(t *testing.T, args ...string) *bootstrapv3.Bootstrap {
	t.Helper()
	out, _, err := render(t, append([]string{"--ads-bootstrap"}, args...)...)
	if err != nil {
		t.Fatalf("render --ads-bootstrap %v: %v", args, err)
	}
	var b bootstrapv3.Bootstrap
	if err := envoy.UnmarshalYAML([]byte(out), &b); err != nil {
		t.Fatal(err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("ValidateAll: %v", err)
	}
	if err := envoy.Validate(&b); err != nil {
		t.Fatalf("ValidateAll of typed configs: %v", err)
	}
	if len(b.GetOverloadManager().GetResourceMonitors()) != 2 || len(b.GetOverloadManager().GetActions()) != 2 {
		t.Errorf("overload manager %v", b.GetOverloadManager())
	}
	return &b
}

// xdsEndpoint is where a bootstrap's certplane_xds cluster dials, as a
// grpc target.
func xdsEndpoint(b *bootstrapv3.Bootstrap) string {
	a := b.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()
	if p := a.GetPipe(); p != nil {
		return "unix://" + p.GetPath()
	}
	sa := a.GetSocketAddress()
	return fmt.Sprintf("passthrough:///%s:%d", sa.GetAddress(), sa.GetPortValue())
}

// bootstrapTLS builds, from the bootstrap's own transport socket, the TLS
// an xDS client dials with: the same files, SNI, SAN and versions Envoy uses.
func bootstrapTLS(t *testing.T, b *bootstrapv3.Bootstrap) credentials.TransportCredentials {
	t.Helper()
	ts := b.GetStaticResources().GetClusters()[0].GetTransportSocket()
	if ts == nil {
		return insecure.NewCredentials()
	}
	up := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(up); err != nil {
		t.Fatal(err)
	}
	ctc := up.GetCommonTlsContext()
	kp, err := tls.LoadX509KeyPair(ctc.GetTlsCertificates()[0].GetCertificateChain().GetFilename(), ctc.GetTlsCertificates()[0].GetPrivateKey().GetFilename())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(ctc.GetValidationContext().GetTrustedCa().GetFilename())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	san := ctc.GetValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact()
	if up.GetSni() != san {
		t.Errorf("sni %q differs from the SAN checked %q", up.GetSni(), san)
	}
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{kp}, RootCAs: roots, ServerName: san,
		NextProtos: ctc.GetAlpnProtocols(), MinVersion: tls.VersionTLS13,
	})
}

// secretsVia fetches every Secret as the bootstrap's node, through the
// bootstrap's xDS cluster.
func secretsVia(t *testing.T, b *bootstrapv3.Bootstrap) (int, error) {
	t.Helper()
	conn, err := grpc.NewClient(xdsEndpoint(b), grpc.WithTransportCredentials(bootstrapTLS(t, b)))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.Send(&discoverygrpc.DiscoveryRequest{Node: b.GetNode(), TypeUrl: resource.SecretType}); err != nil {
		return 0, err
	}
	r, err := s.Recv()
	return len(r.GetResources()), err
}

// TestRenderADSBootstrapReachesServe: the bootstrap render prints for a
// unix socket, and for TCP with xDS mTLS, validates and reaches a serve
// configured the same way (with its node id bound to Envoy's certificate).
func TestRenderADSBootstrapReachesServe(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")

	t.Run("unix socket", func(t *testing.T) {
		sock := "unix://" + filepath.Join(t.TempDir(), "xds.sock")
		sl, _, _ := startServe(t, "--certs", std.Certs, "--config", std.Config, "--admin-address", "", "--xds-address", sock)
		sl.next(t, "reload: published")
		b := renderADS(t, "--xds-address", sock)
		if n, err := secretsVia(t, b); err != nil || n != 2 {
			t.Errorf("through the bootstrap's socket: %d secrets, %v; want 2", n, err)
		}
	})

	t.Run("TCP with xDS mTLS", func(t *testing.T) {
		dir := t.TempDir()
		write := func(name string, data []byte) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		serverCA, clientCA := pkitest.NewCA(t, "xds server CA"), pkitest.NewCA(t, "xds client CA")
		srv := serverCA.Server("certplane.test", pkitest.DNS("certplane.test"))
		envoyCert := clientCA.Client(envoy.DefaultNodeID)
		addr := freeAddr(t)
		sl, _, _ := startServe(t, "--certs", std.Certs, "--config", std.Config, "--admin-address", "", "--xds-address", addr,
			"--xds-cert", write("serve.crt", srv.CertPEM()), "--xds-key", write("serve.key", srv.KeyPEM()),
			"--xds-client-ca", write("clients.pem", clientCA.CertPEM()), "--xds-bind-node-id")
		sl.next(t, "reload: published")

		// Relative paths, as an operator types them: the bootstrap names
		// them absolute, since Envoy does not run from this directory.
		t.Chdir(dir)
		write("envoy.crt", envoyCert.CertPEM())
		write("envoy.key", envoyCert.KeyPEM())
		write("serve-ca.pem", serverCA.CertPEM())
		b := renderADS(t, "--xds-address", addr, "--xds-cert", "envoy.crt", "--xds-key", "envoy.key",
			"--xds-ca", "serve-ca.pem", "--xds-server-name", "certplane.test")
		if dep, err := envoy.DeprecatedFields(b); err != nil || len(dep) > 0 {
			t.Errorf("deprecated fields %v, %v", dep, err)
		}
		if got := b.GetStaticResources().GetClusters()[0].GetTransportSocket().String(); !strings.Contains(got, filepath.Join(dir, "envoy.key")) || strings.Contains(got, "PRIVATE KEY") {
			t.Errorf("transport socket does not name the key file by its absolute path, or inlines it: %s", got)
		}
		if n, err := secretsVia(t, b); err != nil || n != 2 {
			t.Errorf("through the bootstrap's mTLS: %d secrets, %v; want 2", n, err)
		}
	})
}

func TestRenderProblemsExit1(t *testing.T) {
	dir := t.TempDir()
	certs, cfg := filepath.Join(dir, "certs"), filepath.Join(dir, "config")
	if err := os.CopyFS(certs, os.DirFS(renderCase+"/certs")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(cfg, "listeners.yaml")
	if err := os.WriteFile(bad, []byte("listeners:\n  - name: x\n    addres: 0.0.0.0:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := render(t, "--certs", certs, "--config", cfg)
	ee, ok := err.(*exitError)
	if !ok || ee.code != 1 {
		t.Fatalf("err = %v, want exit 1", err)
	}
	if out != "" {
		t.Errorf("stdout not empty on problems:\n%s", out)
	}
	if !strings.Contains(errOut, "problem: "+bad) {
		t.Errorf("stderr does not name %s:\n%s", bad, errOut)
	}
}

func TestRenderUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--certs", "x"},
		{"--bootstrap", "--ads-bootstrap"},
		{"--ads-bootstrap", "--xds-address", "localhost:1"},
		{"--ads-bootstrap", "--xds-address", "127.0.0.1:18000"},
		{"--ads-bootstrap", "--xds-address", "127.0.0.1:18000", "--xds-cert", "c", "--xds-key", "k", "--xds-ca", "ca"},
	} {
		_, _, err := render(t, args...)
		if ee, ok := err.(*exitError); !ok || ee.code != 2 {
			t.Errorf("render %v: err = %v, want exit 2", args, err)
		}
	}
}
