package controlplane

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection enforces the import rules of docs/DESIGN.md: data
// moves one way, and no package reaches back up the chain. It checks each
// package's transitive (non-test) dependencies, so an indirect path breaks
// the rule too.
func TestImportDirection(t *testing.T) {
	const mod = "github.com/certplane/certplane/"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, mod+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], mod) {
			continue
		}
		pkg := strings.TrimPrefix(f[0], mod)
		for _, d := range f[1:] {
			if strings.HasPrefix(d, mod) {
				deps[pkg] = append(deps[pkg], strings.TrimPrefix(d, mod))
			}
		}
	}
	if len(deps) == 0 {
		t.Fatalf("go list found no certplane package:\n%s", out)
	}
	// under reports whether pkg is p or below it.
	under := func(pkg, p string) bool { return pkg == p || strings.HasPrefix(pkg, p+"/") }
	rules := []struct {
		from   string
		never  []string
		reason string
	}{
		{"xds", []string{"watcher", "controlplane", "admin", "proxy", "cmd"}, "xds publishes and serves; the runner drives it"},
		{"proxy", []string{"config", "watcher", "controlplane", "admin", "envoy", "cmd"}, "the proxy knows only xDS resources"},
		{"status", []string{""}, "status is a leaf both planes share"},
		{"envoy", []string{"xds", "proxy", "controlplane", "watcher", "admin"}, "envoy's builders are pure"},
		{"config", []string{"envoy", "xds", "proxy", "controlplane", "watcher", "admin"}, "the model knows no later stage"},
		{"watcher", []string{"config", "envoy", "xds", "proxy", "controlplane", "admin"}, "the watcher only signals"},
		{"admin", []string{"config", "envoy", "xds", "proxy", "controlplane", "watcher"}, "admin is HTTP only, over status"},
		{"crlfetch", []string{"config", "envoy", "xds", "proxy", "controlplane", "watcher", "admin"}, "crlfetch writes files and signals; the runner's loop loads and publishes"},
	}
	// allowed lists edges tolerated for now, each with the issue that
	// removes it. None: keep it that way.
	allowed := map[[2]string]string{}
	for pkg, ds := range deps {
		for _, r := range rules {
			if !under(pkg, r.from) {
				continue
			}
			for _, d := range ds {
				for _, n := range r.never {
					if (n == "" || under(d, n)) && allowed[[2]string{pkg, d}] == "" {
						t.Errorf("%s depends on %s: %s", pkg, d, r.reason)
					}
				}
			}
		}
	}
}
