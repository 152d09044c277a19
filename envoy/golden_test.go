package envoy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/<case>/")

// goldenFiles maps each resource type to its golden file.
var goldenFiles = map[string]string{
	resource.ListenerType: "listeners.yaml",
	resource.RouteType:    "routes.yaml",
	resource.ClusterType:  "clusters.yaml",
	resource.EndpointType: "endpoints.yaml",
	resource.SecretType:   "secrets.yaml",
}

// loadCase reads a golden case's input directories through config.Load,
// exactly as serve does, and insists the model is clean. A case with a
// file input/proxy-only is loaded as serve --data-plane proxy loads it.
func loadCase(t *testing.T, dir string) *config.Model {
	t.Helper()
	_, err := os.Stat(filepath.Join(dir, "input", "proxy-only"))
	ld := config.Loader{ProxyOnly: err == nil}
	m, err := ld.Load(filepath.Join(dir, "input", "certs"), filepath.Join(dir, "input", "config"))
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	for _, p := range m.Problems {
		t.Errorf("problem: %v", p)
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "*", "input"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < len(goldenBundles) {
		t.Fatalf("found %d golden cases, want at least %d", len(dirs), len(goldenBundles))
	}
	for _, in := range dirs {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := loadCase(t, dir)
			units, err := Translate(m)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			sets := make([]Set, 0, len(units))
			for _, l := range m.Listeners {
				sets = append(sets, units[l.Name])
			}
			all, err := Merge(sets...)
			if err != nil {
				t.Fatalf("Merge: %v", err)
			}
			checkSet(t, all)
			for _, typ := range Types {
				got, err := MarshalYAMLList(all.Sorted(typ))
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(dir, goldenFiles[typ])
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the built resources (run with -update if the change is intended):\n%s", path, lineDiff(string(want), string(got)))
				}
			}
		})
	}
}

// checkSet asserts what xds relies on for every published set: each
// resource passes ValidateAll (Any contents included) and sets no
// deprecated field, and the Secrets are exactly those referenced.
func checkSet(t *testing.T, s Set) {
	t.Helper()
	for _, typ := range Types {
		for _, n := range s.Names(typ) {
			r := s[typ][n]
			if err := Validate(r); err != nil {
				t.Errorf("%s %q: %v", shortType(typ), n, err)
			}
			dep, err := DeprecatedFields(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(dep) > 0 {
				t.Errorf("%s %q sets deprecated fields %v", shortType(typ), n, dep)
			}
		}
	}
	refs, err := ReferencedSecrets(s)
	if err != nil {
		t.Fatal(err)
	}
	if have := s.Names(resource.SecretType); !slices.Equal(refs, have) {
		t.Errorf("referenced secrets %v, set holds %v", refs, have)
	}
}
