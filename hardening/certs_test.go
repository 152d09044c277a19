package hardening_test

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
)

// Certificates Go refuses to make (SHA-1 signatures, X.509 v1) are made
// with openssl, exactly as the old cloud guides' commands make them.

const (
	extCA     = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
	extServer = "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
	extClient = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
)

func needOpenSSL(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed: it makes the SHA-1, v1 and encrypted-key inputs (Go refuses to)")
	}
}

func openssl(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func keyPEM(t testing.TB, ca *pkitest.CA) []byte {
	t.Helper()
	b, err := pki.KeyPEM(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opensslCert issues cn signed by the issuer with the given digest ("sha1",
// "sha256") and extension file text ("" makes an X.509 v1 certificate).
func opensslCert(t testing.TB, issuerCert, issuerKey []byte, cn, digest, ext string) (certPEM, keyPEMOut []byte) {
	t.Helper()
	needOpenSSL(t)
	dir := t.TempDir()
	w := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caCrt, caKey := w("ca.pem", issuerCert), w("ca.key", issuerKey)
	key, csr, crt := filepath.Join(dir, "k.pem"), filepath.Join(dir, "r.csr"), filepath.Join(dir, "c.pem")
	openssl(t, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", csr, "-subj", "/CN="+cn)
	args := []string{"x509", "-req", "-in", csr, "-CA", caCrt, "-CAkey", caKey, "-set_serial", "4242",
		"-days", "365", "-" + digest, "-out", crt}
	if ext != "" {
		args = append(args, "-extfile", w("ext.cnf", []byte(ext)))
	}
	openssl(t, args...)
	c, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// opensslV1Root makes a self-signed X.509 v1 root (openssl x509 -req
// -signkey, no extensions), as old guides did.
func opensslV1Root(t testing.TB) []byte {
	t.Helper()
	needOpenSSL(t)
	dir := t.TempDir()
	key, csr, crt := filepath.Join(dir, "k.pem"), filepath.Join(dir, "r.csr"), filepath.Join(dir, "c.pem")
	openssl(t, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=Legacy V1 Root")
	openssl(t, "x509", "-req", "-in", csr, "-signkey", key, "-days", "365", "-sha256", "-out", crt)
	b, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encryptedKey encrypts a PEM key with a passphrase (openssl pkcs8 -topk8).
func encryptedKey(t testing.TB, plain []byte) []byte {
	t.Helper()
	needOpenSSL(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.key"), filepath.Join(dir, "out.key")
	if err := os.WriteFile(in, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	openssl(t, "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", in, "-out", out, "-passout", "pass:hunter2")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// crlWithCriticalExtension signs a CRL carrying a private critical
// extension, which RFC 5280 5.2 makes unusable.
func crlWithCriticalExtension(t testing.TB, ca *pkitest.CA) []byte {
	t.Helper()
	now := time.Now().Add(-time.Minute)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:          big.NewInt(77),
		ThisUpdate:      now,
		NextUpdate:      now.Add(7 * 24 * time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{0x05, 0x00}}},
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pki.CRLPEM(der)
}
