package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestHelpAndReadme checks that every command answers --help on stdout with exit 0, and that the README documents every
// flag its help lists.
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
		out, errb, code := cli(t, append(args, "--help")...)
		if code != 0 || errb != "" || !strings.HasPrefix(out, "usage: certplane "+strings.Join(args, " ")) {
			t.Errorf("%v --help: exit %d, stderr %q, stdout:\n%s", args, code, errb, out)
			continue
		}
		for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
			if !strings.Contains(string(readme), "`--"+m[1]) {
				t.Errorf("README.md does not document `certplane %s --%s`", strings.Join(args, " "), m[1])
			}
		}
	}
	if out, _, code := cli(t, "pki", "--help"); code != 0 || !strings.HasPrefix(out, "usage: certplane pki <ca|server|client|revoke|crl>") {
		t.Errorf("pki --help: exit %d\n%s", code, out)
	}
}
