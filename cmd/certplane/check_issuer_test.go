package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckIssuerNeedsProxy: check refuses a listener with an issuer
// matcher, with file, line and the flag that enables it, and accepts it
// with --data-plane proxy.
func TestCheckIssuerNeedsProxy(t *testing.T) {
	dir := initExample(t)
	file := filepath.Join(dir, "config", "listeners.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "      - {path_prefix: /, backend: demo}",
		"      - {path_prefix: /, backend: demo, allow: [{type: issuer, contains: \"CN=Ops Intermediate\"}]}", 1)
	write(t, dir, "config/listeners.yaml", s)
	out, errb, code := checkCLI(t, dir)
	want := "  [listener https] " + file + `:14: listener "https": routes[0]: allow[0]: type issuer is enforced only by the bundled proxy: Envoy's RBAC filter reads the SANs and the subject of a client certificate, never its issuer, so this listener is not served to Envoy (fail closed): serve it with certplane proxy, or give serve --data-plane proxy when only certplane proxies consume it`
	if code != 1 || errb != "certplane check: 1 problem found\n" || !strings.Contains(out, want) || !strings.Contains(out, "0 listeners served") {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant it to contain %q", code, errb, out, want)
	}
	out, errb, code = cli(t, "check", "--data-plane", "proxy", "--certs", filepath.Join(dir, "certs"), "--config", filepath.Join(dir, "config"))
	if code != 0 || errb != "" || !strings.Contains(out, "1 listener served, 0 blocked, 0 problems") {
		t.Fatalf("--data-plane proxy: exit %d, stderr %q, stdout:\n%s", code, errb, out)
	}
	t.Logf("check --data-plane proxy:\n%s", out)
}
