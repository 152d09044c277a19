package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPKIRevokeBySerialWithReason: a lost certificate is revoked by the
// serial OpenSSL prints for it, with a reason; openssl reads the reason back
// and refuses the certificate against the CRL; the reason survives the next
// CRL; bad serials and reasons are usage errors.
func TestPKIRevokeBySerialWithReason(t *testing.T) {
	needTool(t, "openssl")
	d := t.TempDir()
	ca, cl, crl := filepath.Join(d, "ca"), filepath.Join(d, "clients"), filepath.Join(d, "ca.crl")
	mustCLI(t, "pki", "ca", "--out", ca)
	mustCLI(t, "pki", "client", "--ca", ca, "--name", "bob", "--out", cl)
	mustCLI(t, "pki", "client", "--ca", ca, "--name", "carol", "--out", cl)
	bob := readCert(t, filepath.Join(cl, "bob.crt"))

	printed, err := tool(t, "openssl", "x509", "-in", filepath.Join(cl, "bob.crt"), "-noout", "-serial")
	if err != nil {
		t.Fatalf("openssl x509 -serial: %v\n%s", err, printed)
	}
	out := mustCLI(t, "pki", "revoke", "--ca", ca, "--serial", strings.TrimSpace(printed), "--reason", "keycompromise", "--crl-out", crl)
	if want := fmt.Sprintf("revoked serial %X, reason keyCompromise\n", bob.SerialNumber); !strings.HasPrefix(out, want) {
		t.Fatalf("revoke output:\n%s\nwant prefix %q", out, want)
	}
	text := func() string {
		got, err := tool(t, "openssl", "crl", "-in", crl, "-noout", "-text")
		if err != nil {
			t.Fatalf("openssl crl: %v\n%s", err, got)
		}
		return got
	}
	if got := text(); !strings.Contains(got, "X509v3 CRL Reason Code: \n                Key Compromise") {
		t.Fatalf("CRL lacks bob's reason code:\n%s", got)
	}
	if got, err := tool(t, "openssl", "verify", "-crl_check", "-CAfile", filepath.Join(ca, "ca.crt"), "-CRLfile", crl, filepath.Join(cl, "bob.crt")); err == nil || !strings.Contains(got, "certificate revoked") {
		t.Fatalf("bob against the CRL: %v\n%s", err, got)
	}

	// carol by cert, no reason: no reasonCode extension for her entry; bob's
	// reason is kept in the CA state across CRLs.
	mustCLI(t, "pki", "revoke", "--ca", ca, "--cert", filepath.Join(cl, "carol.crt"), "--crl-out", crl)
	mustCLI(t, "pki", "crl", "--ca", ca, "--crl-out", crl)
	if got := text(); strings.Count(got, "CRL Reason Code") != 1 || !strings.Contains(got, "Key Compromise") {
		t.Fatalf("after renewal, want exactly bob's reason code:\n%s", got)
	}
	state, err := os.ReadFile(filepath.Join(ca, "crl-state.json"))
	if err != nil || !strings.Contains(string(state), `"reason": "keyCompromise"`) {
		t.Fatalf("crl-state.json (%v) lacks bob's reason:\n%s", err, state)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--serial", "zz"}, `--serial "zz": not a hex serial number`},
		{[]string{"--serial", "0"}, "a certificate serial is a positive integer"},
		{[]string{"--serial", "01", "--reason", "removeFromCRL"}, `--reason "removeFromCRL": use one of unspecified, keyCompromise`},
		{[]string{"--serial", "01", "--cert", filepath.Join(cl, "bob.crt")}, "give exactly one of --cert FILE or --serial HEX"},
		{nil, "give exactly one of --cert FILE or --serial HEX"},
	} {
		args := append([]string{"pki", "revoke", "--ca", ca, "--crl-out", crl}, c.args...)
		_, errb, code := cli(t, args...)
		if code != 2 || !strings.Contains(errb, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errb, c.want)
		}
	}
}

// TestPKICAKeep: --keep leaves an existing CA as it is and succeeds; a
// directory holding something else is still refused.
func TestPKICAKeep(t *testing.T) {
	d := t.TempDir()
	ca := filepath.Join(d, "ca")
	mustCLI(t, "pki", "ca", "--out", ca, "--name", "Keep CA")
	before, err := os.ReadFile(filepath.Join(ca, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "pki", "ca", "--out", ca, "--name", "Other", "--keep")
	if !strings.HasPrefix(out, `kept CA "Keep CA"`) {
		t.Errorf("pki ca --keep on an existing CA: %q", out)
	}
	if after, _ := os.ReadFile(filepath.Join(ca, "ca.key")); string(after) != string(before) {
		t.Error("pki ca --keep rewrote the CA key")
	}
	if _, _, code := cli(t, "pki", "ca", "--out", ca); code == 0 {
		t.Error("pki ca without --keep overwrote an existing CA")
	}
	junk := filepath.Join(d, "junk")
	if err := os.MkdirAll(junk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(junk, "ca.key"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errb, code := cli(t, "pki", "ca", "--out", junk, "--keep"); code == 0 || !strings.Contains(errb, "refusing to overwrite a CA") {
		t.Errorf("pki ca --keep on a non-CA directory holding ca.key: exit %d, %q", code, errb)
	}
}
