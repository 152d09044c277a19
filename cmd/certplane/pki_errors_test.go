package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// unwritableDir returns a directory no file can be created in, whoever runs
// the test: mode 0555 for a normal user, the immutable attribute for root
// (which ignores permission bits).
func unwritableDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "locked")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
		return dir
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("running as root and cannot make %s immutable (chattr +i: %v %s): no way to make a directory unwritable", dir, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", dir).Run() })
	return dir
}

func TestPKIErrors(t *testing.T) {
	d := t.TempDir()
	ca, other := filepath.Join(d, "ca"), filepath.Join(d, "other")
	mustCLI(t, "pki", "ca", "--out", ca)
	mustCLI(t, "pki", "ca", "--out", other, "--name", "Other CA")
	noKey := filepath.Join(d, "nokey")
	mismatch := filepath.Join(d, "mismatch")
	for _, dir := range []string{noKey, mismatch} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ca.crt"), must(os.ReadFile(filepath.Join(ca, "ca.crt"))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mismatch, "ca.key"), must(os.ReadFile(filepath.Join(other, "ca.key"))), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(d, "empty.txt")
	twoLines := filepath.Join(d, "two.txt")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(twoLines, []byte("a\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(d, "pw.txt")
	if err := os.WriteFile(good, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	locked := unwritableDir(t)
	watched := filepath.Join(d, "certs", "trust", "clients")
	if err := os.MkdirAll(watched, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(d, "missing")

	cases := []struct {
		name    string
		args    []string
		code    int
		stderr  string // exact, or a prefix when it ends in "…"
		outDirs []string
	}{
		{"missing CA", []string{"pki", "server", "--ca", missing, "--dns", "x", "--out", filepath.Join(d, "o1")}, 1,
			"certplane pki: CA directory " + missing + " does not exist (create one with 'certplane pki ca --out " + missing + "')\n", []string{filepath.Join(d, "o1")}},
		{"CA without key", []string{"pki", "client", "--ca", noKey, "--name", "a", "--out", filepath.Join(d, "o2")}, 1,
			"certplane pki: read private key: open " + filepath.Join(noKey, "ca.key") + ": no such file or directory\n", []string{filepath.Join(d, "o2")}},
		{"key does not match", []string{"pki", "client", "--ca", mismatch, "--name", "a", "--out", filepath.Join(d, "o3")}, 1,
			"certplane pki: " + filepath.Join(mismatch, "ca.key") + ": private key does not match the certificate in " + filepath.Join(mismatch, "ca.crt") + "\n", []string{filepath.Join(d, "o3")}},
		{"missing password file", []string{"pki", "client", "--ca", ca, "--name", "a", "--p12-password-file", filepath.Join(d, "nope.txt"), "--out", filepath.Join(d, "o4")}, 1,
			"certplane pki: read password file: open " + filepath.Join(d, "nope.txt") + ": no such file or directory\n", []string{filepath.Join(d, "o4")}},
		{"empty password file", []string{"pki", "client", "--ca", ca, "--name", "a", "--p12-password-file", empty, "--out", filepath.Join(d, "o5")}, 1,
			"certplane pki: password file " + empty + " is empty; put the .p12 password in it\n", []string{filepath.Join(d, "o5")}},
		{"password file with two lines", []string{"pki", "client", "--ca", ca, "--name", "a", "--p12-password-file", twoLines, "--out", filepath.Join(d, "o6")}, 1,
			"certplane pki: password file " + twoLines + " holds more than one line; put only the password in it\n", []string{filepath.Join(d, "o6")}},
		{"password file is a directory", []string{"pki", "client", "--ca", ca, "--name", "a", "--p12-password-file", d, "--out", filepath.Join(d, "o7")}, 1,
			"certplane pki: read password file: read " + d + ": is a directory\n", []string{filepath.Join(d, "o7")}},
		{"unwritable client dir", []string{"pki", "client", "--ca", ca, "--name", "alice", "--p12-password-file", good, "--out", locked}, 1,
			"certplane pki: write " + filepath.Join(locked, "alice.crt") + ": open " + filepath.Join(locked, ".alice.crt.tmp-") + "…", []string{locked}},
		{"unwritable server dir", []string{"pki", "server", "--ca", ca, "--dns", "localhost", "--out", locked}, 1,
			"certplane pki: write " + filepath.Join(locked, "tls.crt") + ": open " + filepath.Join(locked, ".tls.crt.tmp-") + "…", []string{locked}},
		{"unwritable CA dir", []string{"pki", "ca", "--out", locked}, 1,
			"certplane pki: write " + filepath.Join(locked, "ca.crt") + ": open " + filepath.Join(locked, ".ca.crt.tmp-") + "…", []string{locked}},
		{"CA key into a watched tree", []string{"pki", "ca", "--out", filepath.Join(watched, "myca")}, 1,
			"certplane pki: refusing to put a CA private key in " + filepath.Join(watched, "myca") + ": it is inside the watched certificate directory " + filepath.Join(d, "certs") + "\n", []string{filepath.Join(watched, "myca")}},
		{"existing CA", []string{"pki", "ca", "--out", other}, 1,
			"certplane pki: CA directory " + other + " already holds ca.key; refusing to overwrite a CA\n", nil},
		{"out is the CA dir", []string{"pki", "client", "--ca", ca, "--name", "ca", "--out", ca}, 2,
			"certplane pki: --out must not be the CA directory " + ca + "\n", nil},
		{"server without SAN", []string{"pki", "server", "--ca", ca, "--out", filepath.Join(d, "o8")}, 2,
			"certplane pki: at least one --dns or --ip is required: clients match the server by its SANs, never by CN\n", []string{filepath.Join(d, "o8")}},
		{"bad key type", []string{"pki", "ca", "--out", filepath.Join(d, "o9"), "--key-type", "rsa-1024"}, 2,
			"certplane pki: --key-type \"rsa-1024\" is not supported (want one of ecdsa-p256, rsa-2048, rsa-3072, rsa-4096)\n", []string{filepath.Join(d, "o9")}},
		{"bad client name", []string{"pki", "client", "--ca", ca, "--name", "../x", "--out", filepath.Join(d, "o10")}, 2,
			"certplane pki: --name \"../x\" must be letters, digits, '.', '_' or '-': it names the files\n", []string{filepath.Join(d, "o10")}},
		{"friendly name without .p12", []string{"pki", "client", "--ca", ca, "--name", "a", "--friendly-name", "A", "--out", filepath.Join(d, "o11")}, 2,
			"certplane pki: --friendly-name names the certificate in the .p12: give --p12-password-file too\n", []string{filepath.Join(d, "o11")}},
		{"empty friendly name", []string{"pki", "client", "--ca", ca, "--name", "a", "--p12-password-file", good, "--friendly-name", "", "--out", filepath.Join(d, "o12")}, 2,
			"certplane pki: --friendly-name: a .p12 friendly name must not be empty\n", []string{filepath.Join(d, "o12")}},
		{"friendly name outside the BMP", []string{"pki", "client", "--ca", ca, "--name", "a", "--p12-password-file", good, "--friendly-name", "a \U0001F600", "--out", filepath.Join(d, "o13")}, 2,
			"certplane pki: --friendly-name: friendly name \"a \U0001F600\" holds '\U0001F600', outside the Basic Multilingual Plane a PKCS#12 BMPString can hold\n", []string{filepath.Join(d, "o13")}},
		{"friendly name with a newline", []string{"pki", "client", "--ca", ca, "--name", "a", "--p12-password-file", good, "--friendly-name", "a\nb", "--out", filepath.Join(d, "o14")}, 2,
			"certplane pki: --friendly-name: friendly name \"a\\nb\" holds a control character\n", []string{filepath.Join(d, "o14")}},
		{"unknown pki command", []string{"pki", "frobnicate"}, 2, "usage: certplane pki …", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stateBefore := must(os.ReadFile(filepath.Join(ca, "crl-state.json")))
			_, errb, code := cli(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, c.code, errb)
			}
			if prefix, ok := strings.CutSuffix(c.stderr, "…"); ok {
				if !strings.HasPrefix(errb, prefix) {
					t.Fatalf("stderr:\n%s\nwant prefix:\n%s", errb, prefix)
				}
			} else if errb != c.stderr {
				t.Fatalf("stderr:\n%q\nwant:\n%q", errb, c.stderr)
			}
			for _, dir := range c.outDirs {
				if files := listFiles(t, dir); len(files) != 0 {
					t.Fatalf("failure left files in %s: %v", dir, files)
				}
			}
			if !bytes.Equal(stateBefore, must(os.ReadFile(filepath.Join(ca, "crl-state.json")))) {
				t.Fatal("CA state changed")
			}
		})
	}
}

func TestPKINameEqualToIssuer(t *testing.T) {
	d := t.TempDir()
	ca := filepath.Join(d, "ca")
	mustCLI(t, "pki", "ca", "--out", ca, "--name", "acme")
	_, errb, code := cli(t, "pki", "client", "--ca", ca, "--name", "acme", "--out", filepath.Join(d, "out"))
	if code != 1 || errb != "certplane pki: certificate name \"acme\" equals its CA's; pick a distinct name\n" {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
	_, errb, code = cli(t, "pki", "ca", "--out", filepath.Join(d, "sub"), "--name", "acme", "--intermediate-of", ca)
	if code != 1 || errb != "certplane pki: intermediate CA name \"acme\" equals its issuer's; pick a distinct name\n" {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
}

func TestRevokeUnwritableCRLDirLeavesStateAlone(t *testing.T) {
	d := t.TempDir()
	ca, cl := filepath.Join(d, "ca"), filepath.Join(d, "cl")
	mustCLI(t, "pki", "ca", "--out", ca)
	mustCLI(t, "pki", "client", "--ca", ca, "--name", "mallory", "--out", cl)
	locked := unwritableDir(t)
	before := must(os.ReadFile(filepath.Join(ca, "crl-state.json")))
	_, errb, code := cli(t, "pki", "revoke", "--ca", ca, "--cert", filepath.Join(cl, "mallory.crt"), "--crl-out", filepath.Join(locked, "ca.crl"))
	if want := "certplane pki: write " + filepath.Join(locked, "ca.crl") + ": open "; code != 1 || !strings.HasPrefix(errb, want) {
		t.Fatalf("exit %d, stderr %q, want prefix %q", code, errb, want)
	}
	if !bytes.Equal(before, must(os.ReadFile(filepath.Join(ca, "crl-state.json")))) {
		t.Fatal("a failed revoke changed crl-state.json: the revocation would be recorded without a CRL")
	}
	if files := listFiles(t, ca); !slices.Equal(files, []string{"ca.crt", "ca.key", "crl-state.json"}) {
		t.Fatalf("CA dir holds %v", files)
	}
}
