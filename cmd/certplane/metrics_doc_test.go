package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMetricsTable: every metric name in certplane's code is a row of
// docs/metrics.md, and every row names a metric that exists: one table for
// both planes.
func TestMetricsTable(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(certplane_[a-z0-9_]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		rows[m[1]] = true
	}
	// A metric is defined by Name: "certplane_..." or NewDesc("certplane_...".
	def := regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(certplane_[a-z0-9_]+)"`)
	code := map[string]string{}
	err = filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range def.FindAllStringSubmatch(string(b), -1) {
			code[m[1]] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(code) < 20 {
		t.Fatalf("found %d metric definitions in the code; the pattern no longer matches how metrics are defined", len(code))
	}
	for name, file := range code {
		if !rows[name] {
			t.Errorf("%s (defined in %s) has no row in docs/metrics.md", name, file)
		}
	}
	for name := range rows {
		if code[name] == "" {
			t.Errorf("docs/metrics.md has a row for %s, which no code defines", name)
		}
	}
}
