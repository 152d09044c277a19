package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"go.yaml.in/yaml/v3"

	"github.com/certplane/certplane/envoy"
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
	} {
		_, _, err := render(t, args...)
		if ee, ok := err.(*exitError); !ok || ee.code != 2 {
			t.Errorf("render %v: err = %v, want exit 2", args, err)
		}
	}
}
