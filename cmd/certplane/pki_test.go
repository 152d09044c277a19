package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/pki"
	"software.sslmate.com/src/go-pkcs12"
)

// cli runs certplane in-process and returns stdout, stderr and the exit code.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// mustCLI runs certplane and fails the test unless it exits 0.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errb, code := cli(t, args...)
	if code != 0 {
		t.Fatalf("certplane %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errb)
	}
	return out
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (.ci/run installs it): %v", name, err)
	}
}

// tool runs an external command and returns combined output and its error.
func tool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := pki.ReadCertsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// listFiles returns every file name under dir (recursively), relative.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return names
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}

func TestPKIChainThroughIntermediate(t *testing.T) {
	needTool(t, "openssl")
	d := t.TempDir()
	root, inter := filepath.Join(d, "root"), filepath.Join(d, "inter")
	srv, cl := filepath.Join(d, "certs", "server", "web"), filepath.Join(d, "clients")
	mustCLI(t, "pki", "ca", "--out", root, "--name", "Test Root")
	out := mustCLI(t, "pki", "ca", "--out", inter, "--name", "Test Issuing CA", "--intermediate-of", root, "--validity", "365d")
	if !strings.HasPrefix(out, `created intermediate CA "Test Issuing CA" (ecdsa-p256, valid until `) {
		t.Fatalf("pki ca output: %q", out)
	}
	mustCLI(t, "pki", "server", "--ca", inter, "--name", "web", "--dns", "localhost,web.example", "--ip", "127.0.0.1", "--ip", "::1", "--out", srv)
	mustCLI(t, "pki", "client", "--ca", inter, "--name", "alice", "--uri", "spiffe://example.org/alice", "--email", "alice@example.org", "--out", cl)

	checkMode(t, root, 0o700)
	checkMode(t, filepath.Join(root, "ca.key"), 0o600)
	checkMode(t, filepath.Join(srv, "tls.key"), 0o600)
	checkMode(t, filepath.Join(srv, "tls.crt"), 0o644)
	checkMode(t, filepath.Join(cl, "alice.key"), 0o600)
	if chain := readCert(t, filepath.Join(inter, "chain.pem")); !chain.Equal(readCert(t, filepath.Join(root, "ca.crt"))) {
		t.Fatal("intermediate chain.pem does not hold the root")
	}
	// tls.crt holds leaf then intermediate: the chain a server presents.
	served, err := pki.ReadCertsFile(filepath.Join(srv, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(served) != 2 || served[1].Subject.CommonName != "Test Issuing CA" {
		t.Fatalf("tls.crt holds %d certs, want leaf + intermediate", len(served))
	}
	for _, leaf := range []string{filepath.Join(srv, "tls.crt"), filepath.Join(cl, "alice.crt")} {
		got, err := tool(t, "openssl", "verify", "-CAfile", filepath.Join(root, "ca.crt"), "-untrusted", filepath.Join(inter, "ca.crt"), leaf)
		if err != nil || got != leaf+": OK\n" {
			t.Fatalf("openssl verify %s: %v\n%s", leaf, err, got)
		}
	}
	// Without the intermediate, the leaf does not chain: the test above is real.
	if got, err := tool(t, "openssl", "verify", "-CAfile", filepath.Join(root, "ca.crt"), filepath.Join(cl, "alice.crt")); err == nil {
		t.Fatalf("openssl verify without the intermediate passed:\n%s", got)
	}

	ca := readCert(t, filepath.Join(inter, "ca.crt"))
	rootCert := readCert(t, filepath.Join(root, "ca.crt"))
	s := served[0]
	c := readCert(t, filepath.Join(cl, "alice.crt"))
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature {
		t.Errorf("intermediate: IsCA %v KeyUsage %v", ca.IsCA, ca.KeyUsage)
	}
	if !bytes.Equal(ca.AuthorityKeyId, rootCert.SubjectKeyId) || len(ca.SubjectKeyId) != 20 {
		t.Errorf("intermediate SKI/AKI wrong")
	}
	for _, leaf := range []*x509.Certificate{s, c} {
		if leaf.IsCA || !leaf.BasicConstraintsValid || leaf.Version != 3 || leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
			t.Errorf("%s: IsCA %v v%d sig %v", leaf.Subject.CommonName, leaf.IsCA, leaf.Version, leaf.SignatureAlgorithm)
		}
		if !bytes.Equal(leaf.AuthorityKeyId, ca.SubjectKeyId) || len(leaf.SubjectKeyId) == 0 {
			t.Errorf("%s: SKI/AKI wrong", leaf.Subject.CommonName)
		}
		if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 || leaf.SerialNumber.BitLen() < 64 {
			t.Errorf("%s: serial %X is not a random 128-bit number", leaf.Subject.CommonName, leaf.SerialNumber)
		}
		if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
			t.Errorf("%s: keyUsage %v", leaf.Subject.CommonName, leaf.KeyUsage)
		}
	}
	if len(s.ExtKeyUsage) != 1 || s.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("server EKU %v", s.ExtKeyUsage)
	}
	if got := fmt.Sprint(s.DNSNames, s.IPAddresses); got != "[localhost web.example] [127.0.0.1 ::1]" {
		t.Errorf("server SANs %s", got)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("client EKU %v", c.ExtKeyUsage)
	}
	if got := fmt.Sprint(c.Subject.CommonName, " ", c.URIs, c.EmailAddresses); got != "alice [spiffe://example.org/alice] [alice@example.org]" {
		t.Errorf("client subject/SANs %s", got)
	}
	if c.NotAfter.After(ca.NotAfter) {
		t.Errorf("client outlives its CA: %v > %v", c.NotAfter, ca.NotAfter)
	}
}

func TestPKIKeyTypes(t *testing.T) {
	needTool(t, "openssl")
	d := t.TempDir()
	root := filepath.Join(d, "root")
	mustCLI(t, "pki", "ca", "--out", root, "--key-type", "rsa-2048")
	if _, ok := readCert(t, filepath.Join(root, "ca.crt")).PublicKey.(*rsa.PublicKey); !ok {
		t.Fatal("rsa-2048 CA has no RSA key")
	}
	for _, c := range []struct {
		kt   string
		bits int
	}{{"rsa-2048", 2048}, {"rsa-3072", 3072}, {"rsa-4096", 4096}, {"ecdsa-p256", 256}} {
		t.Run(c.kt, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(d, c.kt)
			mustCLI(t, "pki", "server", "--ca", root, "--dns", "localhost", "--key-type", c.kt, "--out", out)
			cert := readCert(t, filepath.Join(out, "tls.crt"))
			var bits int
			switch k := cert.PublicKey.(type) {
			case *rsa.PublicKey:
				bits = k.N.BitLen()
				if cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
					t.Errorf("RSA server keyUsage %v", cert.KeyUsage)
				}
			case *ecdsa.PublicKey:
				bits = k.Curve.Params().BitSize
			}
			if bits != c.bits {
				t.Fatalf("key is %d bits, want %d", bits, c.bits)
			}
			if cert.SignatureAlgorithm != x509.SHA256WithRSA {
				t.Errorf("signature %v, want SHA256-RSA", cert.SignatureAlgorithm)
			}
			key, err := pki.ReadKeyFile(filepath.Join(out, "tls.key"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tls.X509KeyPair(must(os.ReadFile(filepath.Join(out, "tls.crt"))), must(pki.KeyPEM(key))); err != nil {
				t.Fatalf("key pair: %v", err)
			}
			crt := filepath.Join(out, "tls.crt")
			if got, err := tool(t, "openssl", "verify", "-CAfile", filepath.Join(root, "ca.crt"), crt); err != nil || got != crt+": OK\n" {
				t.Fatalf("openssl verify: %v\n%s", err, got)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestPKIRevokeAndCRL(t *testing.T) {
	needTool(t, "openssl")
	d := t.TempDir()
	ca, cl, crl := filepath.Join(d, "ca"), filepath.Join(d, "clients"), filepath.Join(d, "certs", "trust", "clients", "ca.crl")
	if err := os.MkdirAll(filepath.Dir(crl), 0o755); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "pki", "ca", "--out", ca)
	mustCLI(t, "pki", "client", "--ca", ca, "--name", "alice", "--out", cl)
	mustCLI(t, "pki", "client", "--ca", ca, "--name", "mallory", "--out", cl)
	mallory := readCert(t, filepath.Join(cl, "mallory.crt"))

	out := mustCLI(t, "pki", "revoke", "--ca", ca, "--cert", filepath.Join(cl, "mallory.crt"), "--crl-out", crl)
	if want := fmt.Sprintf("revoked \"mallory\" (serial %X)\nwrote CRL number 1 of \"certplane root CA\" to %s: 1 revoked, next update ", mallory.SerialNumber, crl); !strings.HasPrefix(out, want) {
		t.Fatalf("revoke output:\n%s\nwant prefix:\n%s", out, want)
	}
	got, err := tool(t, "openssl", "crl", "-in", crl, "-CAfile", filepath.Join(ca, "ca.crt"), "-noout", "-text")
	if err != nil || !strings.Contains(got, "verify OK") {
		t.Fatalf("openssl crl -verify: %v\n%s", err, got)
	}
	// OpenSSL prints the serial's bytes: a leading zero nibble included.
	serial := fmt.Sprintf("%X", mallory.SerialNumber.Bytes())
	if !strings.Contains(got, "Serial Number: "+serial+"\n") {
		t.Fatalf("CRL does not list mallory's serial %s:\n%s", serial, got)
	}
	if !strings.Contains(got, "X509v3 CRL Number: \n                1\n") {
		t.Fatalf("CRL number is not 1:\n%s", got)
	}
	chk := func(name string) (string, error) {
		return tool(t, "openssl", "verify", "-crl_check", "-CAfile", filepath.Join(ca, "ca.crt"), "-CRLfile", crl, filepath.Join(cl, name+".crt"))
	}
	if got, err := chk("alice"); err != nil {
		t.Fatalf("alice against the CRL: %v\n%s", err, got)
	}
	if got, err := chk("mallory"); err == nil || !strings.Contains(got, "certificate revoked") {
		t.Fatalf("mallory against the CRL: %v\n%s", err, got)
	}

	// Renew: number 2, nextUpdate as asked, mallory still listed.
	before := time.Now().UTC().Truncate(time.Second)
	mustCLI(t, "pki", "crl", "--ca", ca, "--crl-out", crl, "--next-update", "7d")
	parsed := parseCRL(t, crl)
	if parsed.Number.Int64() != 2 || len(parsed.RevokedCertificateEntries) != 1 {
		t.Fatalf("renewed CRL: number %v, %d entries", parsed.Number, len(parsed.RevokedCertificateEntries))
	}
	if lo, hi := before.Add(7*24*time.Hour), time.Now().Add(7*24*time.Hour); parsed.NextUpdate.Before(lo) || parsed.NextUpdate.After(hi) {
		t.Fatalf("nextUpdate %v not 7 days after thisUpdate %v", parsed.NextUpdate, parsed.ThisUpdate)
	}

	// Revoking twice keeps one entry and still moves the number on.
	out = mustCLI(t, "pki", "revoke", "--ca", ca, "--cert", filepath.Join(cl, "mallory.crt"), "--crl-out", crl)
	if !strings.HasPrefix(out, "was already revoked: \"mallory\"") {
		t.Fatalf("second revoke: %s", out)
	}
	if p := parseCRL(t, crl); p.Number.Int64() != 3 || len(p.RevokedCertificateEntries) != 1 {
		t.Fatalf("after second revoke: number %v, %d entries", p.Number, len(p.RevokedCertificateEntries))
	}

	// A certificate of another CA is refused and changes nothing.
	other := filepath.Join(d, "other")
	mustCLI(t, "pki", "ca", "--out", other, "--name", "Other CA")
	mustCLI(t, "pki", "client", "--ca", other, "--name", "stranger", "--out", cl)
	state := must(os.ReadFile(filepath.Join(ca, "crl-state.json")))
	_, errb, code := cli(t, "pki", "revoke", "--ca", ca, "--cert", filepath.Join(cl, "stranger.crt"), "--crl-out", crl)
	stranger := readCert(t, filepath.Join(cl, "stranger.crt"))
	want := fmt.Sprintf("certplane pki: %s: certificate \"stranger\" (serial %X) was not issued by CA \"certplane root CA\": x509: ECDSA verification failure\n",
		filepath.Join(cl, "stranger.crt"), stranger.SerialNumber)
	if code != 1 || errb != want {
		t.Fatalf("revoke foreign cert: exit %d\n got %q\nwant %q", code, errb, want)
	}
	if !bytes.Equal(state, must(os.ReadFile(filepath.Join(ca, "crl-state.json")))) {
		t.Fatal("a refused revoke changed crl-state.json")
	}
}

func parseCRL(t *testing.T, path string) *x509.RevocationList {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "X509 CRL" {
		t.Fatalf("%s is not a PEM CRL", path)
	}
	crl, err := x509.ParseRevocationList(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func TestPKIClientP12(t *testing.T) {
	needTool(t, "openssl")
	d := t.TempDir()
	root, inter, cl := filepath.Join(d, "root"), filepath.Join(d, "inter"), filepath.Join(d, "clients")
	pw := filepath.Join(d, "pw.txt")
	if err := os.WriteFile(pw, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "pki", "ca", "--out", root)
	mustCLI(t, "pki", "ca", "--out", inter, "--intermediate-of", root)
	mustCLI(t, "pki", "client", "--ca", inter, "--name", "alice", "--p12-password-file", pw, "--out", cl)
	p12 := filepath.Join(cl, "alice.p12")
	checkMode(t, p12, 0o600)
	got, err := tool(t, "openssl", "pkcs12", "-info", "-in", p12, "-passin", "file:"+pw, "-nokeys")
	if err != nil {
		t.Fatalf("openssl pkcs12 -info: %v\n%s", err, got)
	}
	for _, want := range []string{
		"MAC: sha256", "PBES2, PBKDF2, AES-256-CBC", "subject=CN = alice",
		"subject=CN = certplane intermediate CA", "subject=CN = certplane root CA",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("openssl pkcs12 -info lacks %q:\n%s", want, got)
		}
	}
	if got, err := tool(t, "openssl", "pkcs12", "-info", "-in", p12, "-passin", "pass:wrong", "-nokeys"); err == nil {
		t.Fatalf("openssl read the .p12 with a wrong password:\n%s", got)
	}
	// The friendly name certificate pickers show: alice's common name, on
	// the key bag and on the leaf's certificate bag (not on the CAs').
	checkOpenSSLFriendlyName(t, p12, "file:"+pw, "alice")
	key, cert, cas, err := pkcs12.DecodeChain(must(os.ReadFile(p12)), "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(readCert(t, filepath.Join(cl, "alice.crt"))) || len(cas) != 2 {
		t.Fatalf("p12 holds cert %q and %d CA certs", cert.Subject.CommonName, len(cas))
	}
	if !key.(*ecdsa.PrivateKey).PublicKey.Equal(cert.PublicKey) {
		t.Fatal("p12 key does not match its certificate")
	}
	// Browsers: NSS (Firefox, Chrome on Linux) must import it.
	if _, err := exec.LookPath("pk12util"); err != nil {
		t.Logf("pk12util (libnss3-tools) is not installed: NSS import not checked")
		return
	}
	db := filepath.Join(d, "nssdb")
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	if got, err := tool(t, "certutil", "-N", "-d", "sql:"+db, "--empty-password"); err != nil {
		t.Fatalf("certutil -N: %v\n%s", err, got)
	}
	checkNSSFriendlyName(t, p12, pw, "alice")
}

// checkOpenSSLFriendlyName reads the .p12's bag attributes back with
// OpenSSL 3 (passin is an openssl -passin argument): friendlyName want on
// the leaf's certificate bag (-nokeys) and on the key bag (-nocerts), none
// on the CA certificates' bags. OpenSSL 3.0 prints a BMPString byte by byte,
// so want must be ASCII here; checkNSSFriendlyName covers other names.
func checkOpenSSLFriendlyName(t *testing.T, p12, passin, want string) {
	t.Helper()
	certs, err := tool(t, "openssl", "pkcs12", "-info", "-nokeys", "-in", p12, "-passin", passin)
	if err != nil {
		t.Fatalf("openssl pkcs12 -info -nokeys: %v\n%s", err, certs)
	}
	// Each certificate: "Bag Attributes" (its attributes), then "subject=".
	var names []string
	var bagName string
	for _, line := range strings.Split(certs, "\n") {
		switch {
		case strings.HasPrefix(line, "Bag Attributes"):
			bagName = "(none)"
		case strings.HasPrefix(line, "    friendlyName: "):
			bagName = strings.TrimPrefix(line, "    friendlyName: ")
		case strings.HasPrefix(line, "subject="):
			names = append(names, bagName)
			bagName = ""
		}
	}
	if len(names) < 2 || names[0] != want || slices.ContainsFunc(names[1:], func(n string) bool { return n != "(none)" }) {
		t.Errorf("openssl: certificate bags' friendly names %q, want %q on the leaf's and none on the CAs':\n%s", names, want, certs)
	}
	key, err := tool(t, "openssl", "pkcs12", "-info", "-nocerts", "-in", p12, "-passin", passin, "-passout", "pass:only-for-this-test")
	if err != nil {
		t.Fatalf("openssl pkcs12 -info -nocerts: %v\n%s", err, key)
	}
	// Only the attributes: no key, even one encrypted for this test, in the log.
	key, _, _ = strings.Cut(key, "-----BEGIN")
	if n := strings.Count(key, "    friendlyName: "); n != 1 || !strings.Contains(key, "    friendlyName: "+want+"\n") {
		t.Errorf("openssl: key bag lacks friendlyName %q (%d friendlyName lines):\n%s", want, n, key)
	}
}

// checkNSSFriendlyName lists the .p12 with NSS's pk12util (pwFile holds the
// password): friendlyName want on the leaf certificate and the key, and no
// other; then imports it into a new NSS database (as Firefox and Chromium
// on Linux do) and finds the leaf under the nickname want with its key.
// Skipped without pk12util.
func checkNSSFriendlyName(t *testing.T, p12, pwFile, want string) {
	t.Helper()
	if _, err := exec.LookPath("pk12util"); err != nil {
		t.Logf("pk12util (libnss3-tools) is not installed: NSS friendly name not checked")
		return
	}
	list, err := tool(t, "pk12util", "-l", p12, "-w", pwFile)
	if err != nil {
		t.Fatalf("pk12util -l: %v\n%s", err, list)
	}
	var names []string
	for _, line := range strings.Split(list, "\n") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "Friendly Name: "); ok {
			names = append(names, n)
		}
	}
	if !slices.Equal(names, []string{want, want}) {
		t.Errorf("pk12util -l: friendly names %q, want %q on the certificate and the key:\n%s", names, want, list)
	}
	db := filepath.Join(t.TempDir(), "nssdb")
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	if got, err := tool(t, "certutil", "-N", "-d", "sql:"+db, "--empty-password"); err != nil {
		t.Fatalf("certutil -N: %v\n%s", err, got)
	}
	if got, err := tool(t, "pk12util", "-i", p12, "-d", "sql:"+db, "-w", pwFile); err != nil || !strings.Contains(got, "PKCS12 IMPORT SUCCESSFUL") {
		t.Fatalf("pk12util import: %v\n%s", err, got)
	}
	// -L -n finds the certificate by nickname; -K lists the keys by it.
	if got, err := tool(t, "certutil", "-L", "-d", "sql:"+db, "-n", want); err != nil {
		t.Errorf("certutil -L -n %q after import: %v\n%s", want, err, got)
	}
	if got, err := tool(t, "certutil", "-K", "-d", "sql:"+db); err != nil || !strings.Contains(got, want) {
		t.Errorf("certutil -K: no key under nickname %q: %v\n%s", want, err, got)
	}
}

// TestPKIClientFriendlyName: --friendly-name sets the name pickers show,
// read back by OpenSSL, NSS and a Go decoder (pki tests); bad names are
// refused before anything is written.
func TestPKIClientFriendlyName(t *testing.T) {
	needTool(t, "openssl")
	d := t.TempDir()
	ca, cl := filepath.Join(d, "ca"), filepath.Join(d, "clients")
	pw := filepath.Join(d, "pw.txt")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "pki", "ca", "--out", ca)
	mustCLI(t, "pki", "client", "--ca", ca, "--name", "alice", "--p12-password-file", pw,
		"--friendly-name", "Alice's laptop (certplane)", "--out", cl)
	p12 := filepath.Join(cl, "alice.p12")
	checkOpenSSLFriendlyName(t, p12, "pass:s3cret", "Alice's laptop (certplane)")
	checkNSSFriendlyName(t, p12, pw, "Alice's laptop (certplane)")
	if cert := readCert(t, filepath.Join(cl, "alice.crt")); cert.Subject.CommonName != "alice" {
		t.Errorf("--friendly-name changed the certificate's CN to %q", cert.Subject.CommonName)
	}
	// Beyond ASCII (UCS-2 only): NSS decodes the BMPString to UTF-8.
	mustCLI(t, "pki", "client", "--ca", ca, "--name", "bob", "--p12-password-file", pw,
		"--friendly-name", "Bob – Ünïcode 日本", "--out", cl)
	checkNSSFriendlyName(t, filepath.Join(cl, "bob.p12"), pw, "Bob – Ünïcode 日本")
}

// TestCurlMutualTLS runs a Go server that requires client certificates from
// the init example's CA and checks what curl gets with alice's certificate
// and with one from another CA.
func TestCurlMutualTLS(t *testing.T) {
	needTool(t, "curl")
	d := t.TempDir()
	ex := filepath.Join(d, "example")
	mustCLI(t, "init", ex)
	other := filepath.Join(d, "other")
	mustCLI(t, "pki", "ca", "--out", other, "--name", "Other CA")
	mustCLI(t, "pki", "client", "--ca", other, "--name", "stranger", "--out", filepath.Join(d, "stranger"))

	serverCert, err := tls.LoadX509KeyPair(filepath.Join(ex, "certs/server/default/tls.crt"), filepath.Join(ex, "certs/server/default/tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, filepath.Join(ex, "certs/trust/clients/ca.pem")))
	logged := make(chan string, 16)
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s\n", r.TLS.PeerCertificates[0].Subject.CommonName)
		}),
		ErrorLog: log.New(writerFunc(func(p []byte) {
			select {
			case logged <- string(p):
			default:
			}
		}), "", 0),
		ReadHeaderTimeout: 5 * time.Second,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("https://localhost:%d/", port)
	resolve := fmt.Sprintf("localhost:%d:127.0.0.1", port)
	cacert := filepath.Join(ex, "certs/trust/clients/ca.pem")

	got, err := tool(t, "curl", "-sS", "--max-time", "10", "--resolve", resolve, "--cacert", cacert,
		"--cert", filepath.Join(ex, "clients/alice.crt"), "--key", filepath.Join(ex, "clients/alice.key"), url)
	if err != nil || got != "hello alice\n" {
		t.Fatalf("curl with alice: %v\n%s", err, got)
	}
	got, err = tool(t, "curl", "-sS", "--max-time", "10", "--resolve", resolve, "--cacert", cacert,
		"--cert", filepath.Join(d, "stranger/stranger.crt"), "--key", filepath.Join(d, "stranger/stranger.key"), url)
	if err == nil || strings.Contains(got, "hello") {
		t.Fatalf("curl with another CA's certificate succeeded:\n%s", got)
	}
	// The server's verdict is what matters, whichever way curl words it.
	want := "tls: failed to verify certificate: x509: certificate signed by unknown authority"
	timeout := time.After(10 * time.Second)
	var seen []string
	for {
		select {
		case line := <-logged:
			if strings.Contains(line, want) {
				return
			}
			seen = append(seen, line)
		case <-timeout:
			t.Fatalf("server did not log %q; logged:\n%s", want, strings.Join(seen, ""))
		}
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

var _ io.Writer = writerFunc(nil)
