package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// commandDocs names the reference page of each command; TestHelpAndReadme
// requires each flag in its command's own page, so a flag documented only
// for another command does not count.
var commandDocs = map[string]string{
	"pki ca": "docs/certificates.md", "pki server": "docs/certificates.md", "pki client": "docs/certificates.md",
	"pki revoke": "docs/certificates.md", "pki crl": "docs/certificates.md", "init": "docs/certificates.md",
	"backend": "docs/operations.md", "demo": "docs/operations.md",
	"serve": "docs/control-plane.md", "check": "docs/control-plane.md", "render": "docs/control-plane.md",
	"proxy": "docs/proxy.md",
}

// TestHelpAndReadme checks that every command answers --help on stdout with exit 0, that its reference page
// (commandDocs) documents every flag its help lists, and that the README links each of those pages.
func TestHelpAndReadme(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for _, args := range [][]string{
		{"pki", "ca"}, {"pki", "server"}, {"pki", "client"}, {"pki", "revoke"}, {"pki", "crl"},
		{"init"}, {"backend"}, {"demo"},
		{"serve"}, {"proxy"}, {"check"}, {"render"},
	} {
		cmd := strings.Join(args, " ")
		page := commandDocs[cmd]
		doc, err := os.ReadFile(filepath.Join("../..", page))
		if err != nil {
			t.Fatalf("certplane %s: reference page: %v", cmd, err)
		}
		if !strings.Contains(string(doc), "certplane "+cmd) {
			t.Errorf("%s does not name `certplane %s`", page, cmd)
		}
		if !strings.Contains(string(readme), "]("+page) {
			t.Errorf("README.md does not link %s", page)
		}
		out, errb, code := cli(t, append(args, "--help")...)
		if code != 0 || errb != "" || !strings.HasPrefix(out, "usage: certplane "+cmd) {
			t.Errorf("%v --help: exit %d, stderr %q, stdout:\n%s", args, code, errb, out)
			continue
		}
		for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
			if !strings.Contains(string(doc), "`--"+m[1]) {
				t.Errorf("%s does not document `certplane %s --%s`", page, cmd, m[1])
			}
		}
	}
	if out, _, code := cli(t, "pki", "--help"); code != 0 || !strings.HasPrefix(out, "usage: certplane pki <ca|server|client|revoke|crl>") {
		t.Errorf("pki --help: exit %d\n%s", code, out)
	}
}
