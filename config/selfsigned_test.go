package config_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certplane/certplane/config"
)

// tutorialCert makes a server certificate the way most tutorials do:
// `openssl req -x509 -newkey ... -subj /CN=localhost`, which OpenSSL 3 marks
// basicConstraints CA:TRUE by default.
func tutorialCert(t *testing.T, extra ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	args := append([]string{"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
		"-days", "365", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"}, extra...)
	if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl req -x509: %v\n%s", err, out)
	}
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

// A self-signed CA:TRUE server certificate is served (Envoy and nginx serve
// it) with a warning that says why it is unusual.
func TestSelfSignedCAServerCertificateServedWithWarning(t *testing.T) {
	certPEM, keyPEM := tutorialCert(t)
	kp, warnings, err := config.ParseKeyPair(config.RoleServer, "web", "certs/server/web/tls.crt", certPEM, "certs/server/web/tls.key", keyPEM)
	if err != nil {
		t.Fatalf("self-signed CA:TRUE server certificate refused: %v", err)
	}
	if kp == nil || !kp.Chain[0].IsCA {
		t.Fatalf("key pair = %v; want the CA:TRUE certificate (did openssl change its defaults?)", kp)
	}
	var found bool
	for _, w := range warnings {
		msg := w.Err.Error()
		if strings.Contains(msg, "certs/server/web/tls.crt") && strings.Contains(msg, "self-signed CA certificate") && strings.Contains(msg, "CA:FALSE") {
			found = true
		}
	}
	if !found {
		t.Errorf("warnings = %v; want one naming the file, the self-signed CA certificate and the CA:FALSE fix", warnings)
	}
}

// The same certificate as a client certificate (upstream mTLS) stays refused:
// only a server certificate made the tutorial way is tolerated.
func TestSelfSignedCAClientCertificateRefused(t *testing.T) {
	certPEM, keyPEM := tutorialCert(t)
	_, _, err := config.ParseKeyPair(config.RoleClient, "up", "certs/client/up/tls.crt", certPEM, "certs/client/up/tls.key", keyPEM)
	if err == nil || !strings.Contains(err.Error(), "is a CA certificate") {
		t.Errorf("client role: err = %v, want the CA-certificate refusal", err)
	}
}
