package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckAuthz: check shows allow lists, subjects and the xfcc policy,
// explains the issuer refusal, and warns about a forwarded XFCC.
func TestCheckAuthz(t *testing.T) {
	dir := initExample(t)
	path := filepath.Join(dir, "config", "listeners.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "      trust_store: clients\n", "      trust_store: clients\n      subjects: [{type: subject, contains: \"O=certplane\"}]\n", 1)
	y = strings.Replace(y, "client_cert_headers: [xfcc]", "client_cert_headers: [{xfcc: {mode: append_forward, fields: [hash, uri]}}]", 1)
	y = strings.Replace(y, "      - {path_prefix: /, backend: demo}\n",
		"      - {path_prefix: /admin, backend: demo, allow: [{type: uri, exact: \"spiffe://partners/admin\"}]}\n      - {path_prefix: /, backend: demo}\n", 1)
	write(t, dir, "config/listeners.yaml", y)
	out, errb, code := checkCLI(t, dir)
	if code != 0 || errb != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errb, out)
	}
	for _, want := range []string{
		`, subjects (403 otherwise) [subject contains "O=certplane"]` + "\n",
		"  client certificate headers: xfcc (xfcc append_forward: hash, uri)\n",
		`  route /admin allow [uri exact "spiffe://partners/admin"] -> backend demo: `,
		"1 listener served, 0 blocked, 0 problems, 0 warnings\n", // subjects restrict the clients
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	write(t, dir, "config/listeners.yaml", strings.Replace(y, "{type: uri, exact: \"spiffe://partners/admin\"}", "{type: issuer, exact: \"CN=Partners CA\"}", 1))
	out, errb, code = checkCLI(t, dir)
	if code != 1 || errb != "certplane check: 1 problem found\n" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errb, out)
	}
	if want := "type issuer is enforced only by the bundled proxy: Envoy's RBAC filter reads the SANs and the subject of a client certificate, never its issuer"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}

	write(t, dir, "config/listeners.yaml", strings.Replace(y, "      subjects: [{type: subject, contains: \"O=certplane\"}]\n", "", 1))
	out, _, code = checkCLI(t, dir)
	if code != 0 || !strings.Contains(out, "1 warning") || !strings.Contains(out, "can forge identities for the backends") {
		t.Errorf("exit %d; want a warning about the forwarded XFCC:\n%s", code, out)
	}
}
