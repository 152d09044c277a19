// Package testenv holds the docker compose test environment (run.sh). Its Go
// tests need no Docker: they check that the compose file, the Envoy
// bootstrap and the testenv config agree with each other and with certplane,
// so a broken wiring fails `go test ./...` everywhere, not only where a
// Docker engine answers.
package testenv

import (
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki/pkitest"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	User        string         `yaml:"user"`
	ReadOnly    bool           `yaml:"read_only"`
	CapDrop     []string       `yaml:"cap_drop"`
	Privileged  bool           `yaml:"privileged"`
	NetworkMode string         `yaml:"network_mode"`
	Profiles    []string       `yaml:"profiles"`
	Entrypoint  []string       `yaml:"entrypoint"`
	Command     []string       `yaml:"command"`
	Volumes     []string       `yaml:"volumes"`
	Ports       []string       `yaml:"ports"`
	Healthcheck map[string]any `yaml:"healthcheck"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// flag returns the value of --name=value in a command, "" when absent.
func flag(cmd []string, name string) string {
	for i, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(cmd) {
			return cmd[i+1]
		}
	}
	return ""
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	want := []string{"pki", "pki-xds-ca", "pki-xds-server", "pki-xds-proxy", "pki-xds-envoy",
		"certplane", "backend1", "backend2", "proxy", "envoy"}
	for _, name := range want {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %q missing", name)
		}
	}
	// A second `up` on the same volume reruns the one-shots: those that
	// refuse an existing output must keep it instead.
	for _, name := range []string{"pki", "pki-xds-ca"} {
		if s, ok := c.Services[name]; ok && !slices.Contains(s.Command, "--keep") {
			t.Errorf("%s: %v lacks --keep: a second compose up on the kept volume would fail", name, s.Command)
		}
	}
	if len(c.Services) != len(want) {
		t.Errorf("services = %d, want %d: update this test and README.md with any new one", len(c.Services), len(want))
	}
	if got := c.Services["proxy"].Profiles; !slices.Equal(got, []string{"fallback"}) {
		t.Errorf("proxy profiles = %v, want [fallback]", got)
	}
	if got := c.Services["envoy"].Profiles; !slices.Equal(got, []string{"envoy"}) {
		t.Errorf("envoy profiles = %v, want [envoy]", got)
	}
	for name, s := range c.Services {
		if s.Privileged || s.NetworkMode != "" {
			t.Errorf("%s: privileged or network_mode set; the project network only", name)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: port %q is not published on the host's loopback only", name, p)
			}
		}
		if s.User != "65532:65532" || !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) {
			t.Errorf("%s: user %q read_only %v cap_drop %v; want 65532:65532, read-only, no capabilities", name, s.User, s.ReadOnly, s.CapDrop)
		}
		if name == "envoy" {
			continue
		}
		if s.Image != "${CERTPLANE_IMAGE:-certplane:testenv}" {
			t.Errorf("%s: image %q, want the certplane image", name, s.Image)
		}
		if strings.HasPrefix(name, "pki") {
			if s.Healthcheck != nil || len(s.Ports) > 0 {
				t.Errorf("%s: a one-shot step needs no health check or port", name)
			}
			continue
		}
		test, _ := s.Healthcheck["test"].([]any)
		if len(test) < 3 || test[0] != "CMD" || test[1] != "/certplane" {
			t.Errorf("%s: healthcheck %v must exec /certplane (scratch has no shell)", name, test)
		}
	}
}

// TestComposeXDSFiles checks that the files each xDS endpoint is given are
// the ones the pki-xds-* steps write, and that every service that needs them
// waits for those steps.
func TestComposeXDSFiles(t *testing.T) {
	c := loadCompose(t)
	caDir := flag(c.Services["pki-xds-ca"].Command, "out")
	caCert := path.Join(caDir, "ca.crt")
	srv := c.Services["pki-xds-server"].Command
	if flag(srv, "ca") != caDir || flag(srv, "dns") != "certplane" {
		t.Errorf("pki-xds-server: %v, want --ca %s --dns certplane (the name Envoy and the proxy dial)", srv, caDir)
	}
	srvDir := flag(srv, "out")
	clientFiles := func(step string) (string, string) {
		cmd := c.Services[step].Command
		if flag(cmd, "ca") != caDir {
			t.Errorf("%s: --ca %q, want %q", step, flag(cmd, "ca"), caDir)
		}
		base := path.Join(flag(cmd, "out"), flag(cmd, "name"))
		return base + ".crt", base + ".key"
	}

	cp := c.Services["certplane"].Command
	for f, w := range map[string]string{"xds-cert": srvDir + "/tls.crt", "xds-key": srvDir + "/tls.key", "xds-client-ca": caCert} {
		if got := flag(cp, f); got != w {
			t.Errorf("certplane --%s = %q, want %q", f, got, w)
		}
	}
	if addr := flag(cp, "xds-address"); !strings.HasSuffix(addr, ":18000") {
		t.Errorf("certplane --xds-address = %q, want port 18000", addr)
	}

	crt, key := clientFiles("pki-xds-proxy")
	px := c.Services["proxy"].Command
	for f, w := range map[string]string{"xds": "certplane:18000", "xds-cert": crt, "xds-key": key, "xds-ca": caCert} {
		if got := flag(px, f); got != w {
			t.Errorf("proxy --%s = %q, want %q", f, got, w)
		}
	}

	crt, key = clientFiles("pki-xds-envoy")
	b := loadBootstrap(t)
	ctx := envoyXDSContext(t, b)
	if got := ctx.GetTlsCertificates()[0].GetCertificateChain().GetFilename(); got != crt {
		t.Errorf("envoy xDS certificate %q, want %q", got, crt)
	}
	if got := ctx.GetTlsCertificates()[0].GetPrivateKey().GetFilename(); got != key {
		t.Errorf("envoy xDS key %q, want %q", got, key)
	}
	if got := ctx.GetValidationContext().GetTrustedCa().GetFilename(); got != caCert {
		t.Errorf("envoy xDS CA %q, want %q", got, caCert)
	}
	env := c.Services["envoy"]
	if !slices.Contains(env.Volumes, "./envoy-bootstrap.yaml:/etc/envoy/envoy.yaml:ro") {
		t.Errorf("envoy volumes %v must mount ./envoy-bootstrap.yaml at /etc/envoy/envoy.yaml", env.Volumes)
	}
	if !slices.Equal(env.Entrypoint, []string{"/usr/local/bin/envoy"}) || len(env.Command) < 2 || env.Command[0] != "-c" || env.Command[1] != "/etc/envoy/envoy.yaml" {
		t.Errorf("envoy entrypoint %v command %v, want /usr/local/bin/envoy -c /etc/envoy/envoy.yaml (the same in the debian and distroless images)", env.Entrypoint, env.Command)
	}

	// Every data path reaches certplane only once all xDS files exist.
	deps := c.Services["certplane"].DependsOn
	for _, step := range []string{"pki-xds-server", "pki-xds-proxy", "pki-xds-envoy"} {
		if deps[step].Condition != "service_completed_successfully" {
			t.Errorf("certplane must wait for %s to complete successfully", step)
		}
	}
	for _, dp := range []string{"proxy", "envoy"} {
		if c.Services[dp].DependsOn["certplane"].Condition != "service_healthy" {
			t.Errorf("%s must wait for certplane to be healthy", dp)
		}
	}
}

// TestComposeConfigLoads loads testenv/config with certplane's own loader
// against a certs tree shaped like the one `certplane init` writes, so the
// mounted config cannot drift from the schema.
func TestComposeConfigLoads(t *testing.T) {
	ca := pkitest.NewCA(t, "certplane example CA")
	tr := pkitest.NewTree(t)
	tr.Server("default", ca.Server("localhost", pkitest.IPs("127.0.0.1")))
	tr.Trust("clients", "ca.pem", ca.CertPEM())
	tr.Trust("clients", "ca.crl", ca.CRLPEM())

	m, err := config.Load(tr.Certs, "config")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Problems {
		t.Errorf("problem: %v", p)
	}
	if len(m.Listeners) != 1 {
		t.Fatalf("listeners = %d, want 1", len(m.Listeners))
	}
	l := m.Listeners[0]
	if l.Name != "https" || l.Host != "0.0.0.0" || l.Port != 8443 || l.ClientAuth.Mode != config.ModeVerify {
		t.Errorf("listener %s %s:%d mode %s, want https 0.0.0.0:8443 verify (the port compose publishes)", l.Name, l.Host, l.Port, l.ClientAuth.Mode)
	}
	be := m.Backends["demo"]
	if be == nil {
		t.Fatal("backend demo missing")
	}
	want := []config.Endpoint{{Host: "backend1", Port: 8080}, {Host: "backend2", Port: 8080}}
	if !slices.Equal(be.Endpoints, want) {
		t.Errorf("endpoints = %v, want %v (the compose services)", be.Endpoints, want)
	}
	if be.HealthCheck == nil || be.HealthCheck.Path != "/healthz" {
		t.Errorf("health check = %+v, want /healthz (what certplane backend serves)", be.HealthCheck)
	}
}
