package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certplane/certplane/pki/pkitest"
)

func TestInitScaffold(t *testing.T) {
	needTool(t, "openssl")
	dir := filepath.Join(t.TempDir(), "example")
	out := mustCLI(t, "init", dir)
	if !strings.HasPrefix(out, "wrote a certplane example to "+dir+"\n") ||
		!strings.Contains(out, "curl --cacert "+filepath.Join(dir, "certs/trust/clients/ca.pem")+" --cert "+filepath.Join(dir, "clients/alice.crt")+" --key "+filepath.Join(dir, "clients/alice.key")+" https://localhost:8443/\n") {
		t.Fatalf("init output:\n%s", out)
	}
	want := []string{
		"certs/server/default/tls.crt", "certs/server/default/tls.key",
		"certs/trust/clients/ca.crl", "certs/trust/clients/ca.pem",
		"clients/alice.crt", "clients/alice.key", "clients/alice.p12",
		"clients/mallory.crt", "clients/mallory.key", "clients/p12-password.txt",
		"config/listeners.yaml",
		"pki/ca.crt", "pki/ca.key", "pki/crl-state.json",
	}
	if got := listFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("init wrote\n%v\nwant\n%v", got, want)
	}
	for _, f := range []string{"certs/server/default/tls.key", "clients/alice.key", "clients/alice.p12", "clients/mallory.key", "clients/p12-password.txt", "pki/ca.key"} {
		checkMode(t, filepath.Join(dir, f), 0o600)
	}
	checkMode(t, filepath.Join(dir, "pki"), 0o700)
	checkMode(t, dir, 0o755)

	// The CA key never sits in the watched tree.
	caKey := must(os.ReadFile(filepath.Join(dir, "pki/ca.key")))
	for _, f := range listFiles(t, filepath.Join(dir, "certs")) {
		if bytes.Equal(must(os.ReadFile(filepath.Join(dir, "certs", f))), caKey) {
			t.Fatalf("the CA key is in certs/%s", f)
		}
	}

	cfg := string(must(os.ReadFile(filepath.Join(dir, "config/listeners.yaml"))))
	wantYAML := pkitest.ConfigYAML("127.0.0.1:8443", "127.0.0.1:9001", "127.0.0.1:9002")
	if !strings.HasSuffix(cfg, wantYAML) {
		t.Fatalf("listeners.yaml:\n%s\nwant it to end with:\n%s", cfg, wantYAML)
	}

	ca := filepath.Join(dir, "certs/trust/clients/ca.pem")
	crl := filepath.Join(dir, "certs/trust/clients/ca.crl")
	srv := filepath.Join(dir, "certs/server/default/tls.crt")
	if got, err := tool(t, "openssl", "verify", "-CAfile", ca, "-purpose", "sslserver", srv); err != nil || got != srv+": OK\n" {
		t.Fatalf("server cert: %v\n%s", err, got)
	}
	alice := filepath.Join(dir, "clients/alice.crt")
	if got, err := tool(t, "openssl", "verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl, "-purpose", "sslclient", alice); err != nil || got != alice+": OK\n" {
		t.Fatalf("alice: %v\n%s", err, got)
	}
	if got, err := tool(t, "openssl", "verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl, filepath.Join(dir, "clients/mallory.crt")); err == nil || !strings.Contains(got, "certificate revoked") {
		t.Fatalf("mallory is not revoked: %v\n%s", err, got)
	}
	if got, err := tool(t, "openssl", "pkcs12", "-info", "-nokeys", "-in", filepath.Join(dir, "clients/alice.p12"),
		"-passin", "file:"+filepath.Join(dir, "clients/p12-password.txt")); err != nil || !strings.Contains(got, "subject=CN = alice") {
		t.Fatalf("alice.p12: %v\n%s", err, got)
	}
	// Its friendly name, what the browser's certificate picker shows.
	checkOpenSSLFriendlyName(t, filepath.Join(dir, "clients/alice.p12"), "file:"+filepath.Join(dir, "clients/p12-password.txt"), "alice")
	if pw := must(os.ReadFile(filepath.Join(dir, "clients/p12-password.txt"))); len(pw) != 33 {
		t.Fatalf("p12 password is %d bytes, want 32 hex digits and a newline", len(pw))
	}
	// The CA dir keeps working: the next CRL is number 2 and still lists mallory.
	mustCLI(t, "pki", "crl", "--ca", filepath.Join(dir, "pki"), "--crl-out", crl)
	if p := parseCRL(t, crl); p.Number.Int64() != 2 || len(p.RevokedCertificateEntries) != 1 {
		t.Fatalf("renewed CRL: number %v, %d entries", p.Number, len(p.RevokedCertificateEntries))
	}

	// A non-empty directory is refused without --force, and nothing changes.
	_, errb, code := cli(t, "init", dir)
	if code != 1 || errb != "certplane init: "+dir+" is not empty; pick a new directory or pass --force to overwrite\n" {
		t.Fatalf("init into non-empty dir: exit %d, %q", code, errb)
	}
	if !bytes.Equal(caKey, must(os.ReadFile(filepath.Join(dir, "pki/ca.key")))) {
		t.Fatal("refused init changed the CA key")
	}
	// --keep leaves an existing example untouched (containers run init on every start).
	if out := mustCLI(t, "init", "--keep", dir); !strings.Contains(out, "kept as it is") {
		t.Fatalf("init --keep output: %s", out)
	}
	if !bytes.Equal(caKey, must(os.ReadFile(filepath.Join(dir, "pki/ca.key")))) {
		t.Fatal("init --keep changed the CA key")
	}
	mustCLI(t, "init", "--force", "--listen", "127.0.0.1:10443", "--backends", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003", dir)
	if bytes.Equal(caKey, must(os.ReadFile(filepath.Join(dir, "pki/ca.key")))) {
		t.Fatal("init --force kept the old CA")
	}
	cfg = string(must(os.ReadFile(filepath.Join(dir, "config/listeners.yaml"))))
	if !strings.HasSuffix(cfg, pkitest.ConfigYAML("127.0.0.1:10443", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003")) {
		t.Fatalf("listeners.yaml after --force:\n%s", cfg)
	}
}

func TestInitErrors(t *testing.T) {
	d := t.TempDir()
	locked := unwritableDir(t)
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"init"}, 2, "certplane init: DIR is required: certplane init DIR\n"},
		{[]string{"init", "--listen", "localhost:8443", filepath.Join(d, "a")}, 2, "certplane init: --listen \"localhost:8443\": host must be an IP address\n"},
		{[]string{"init", "--backends", "127.0.0.1", filepath.Join(d, "b")}, 2, "certplane init: --backends \"127.0.0.1\": address 127.0.0.1: missing port in address\n"},
		{[]string{"init", filepath.Join(d, "c"), "extra"}, 2, "certplane init: unexpected argument \"extra\"\n"},
		{[]string{"init", "--backends", "bad_host:80", filepath.Join(d, "e")}, 2, "certplane init: --backends \"bad_host:80\": host must be an IP address or a DNS name\n"},
		{[]string{"init", "--force", "--keep", filepath.Join(d, "f")}, 2, "certplane init: --force and --keep contradict each other\n"},
	}
	for _, c := range cases {
		_, errb, code := cli(t, c.args...)
		// Usage errors print the flags first; the last line is the verdict.
		if i := strings.LastIndex(strings.TrimSuffix(errb, "\n"), "\n"); i >= 0 && c.code == 2 {
			errb = errb[i+1:]
		}
		if code != c.code || errb != c.stderr {
			t.Errorf("certplane %v: exit %d, stderr %q; want %d, %q", c.args, code, errb, c.code, c.stderr)
		}
	}
	if files := listFiles(t, d); len(files) != 0 {
		t.Fatalf("failed inits left %v", files)
	}
	_, errb, code := cli(t, "init", locked)
	if code != 1 || !strings.HasPrefix(errb, "certplane init: create "+filepath.Join(locked, "pki")+": mkdir ") {
		t.Fatalf("init into unwritable dir: exit %d, %q", code, errb)
	}
	if files := listFiles(t, locked); len(files) != 0 {
		t.Fatalf("failed init left %v", files)
	}
}
