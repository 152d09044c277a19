package config_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
)

// webYAML defines listener "web" (verify, trust store "clients") and its
// backend "app" (mTLS upstream). Line numbers matter: tests assert them.
const webYAML = `listeners:
  - name: web
    address: 0.0.0.0:8443
    certificates: [web]
    client_auth:
      mode: verify
      trust_store: clients
    routes:
      - {path_prefix: /, backend: app}
backends:
  - name: app
    endpoints: ["10.0.0.1:8080"]
    tls: {trust_store: internal, certificate: upstream, sni: app.internal}
`

// otherYAML defines listener "other" in its own file: it must keep loading
// whatever is wrong with "web".
const otherYAML = `listeners:
  - name: other
    address: 127.0.0.1:9443
    certificates: [other]
    routes:
      - {path_prefix: /, backend: plain}
backends:
  - name: plain
    endpoints: ["10.0.0.2:8080", "backend.internal:8080"]
    health_check: {}
`

// fixture is a complete valid tree: root -> issuing CA -> web.example
// (served with its chain), root -> other.example, a "clients" trust store
// with both CAs and a CRL for each, an "internal" store and a client key
// pair "upstream" for the mTLS backend.
type fixture struct {
	t           *testing.T
	tr          *pkitest.Tree
	root, inter *pkitest.CA
	web, other  *pkitest.Leaf
	edge        *pkitest.Leaf
	vars        map[string]string // facts a mutation records for its expectations
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, tr: pkitest.NewTree(t), vars: map[string]string{}}
	f.root = pkitest.NewCA(t, "Test Root")
	f.inter = f.root.Intermediate("Test Issuing CA")
	f.web = f.inter.Server("web.example")
	f.other = f.root.Server("other.example")
	f.edge = f.inter.Client("edge")
	f.tr.Server("web", f.web)
	f.tr.ServerFlat("other", f.other)
	f.tr.Client("upstream", f.edge)
	f.tr.Trust("clients", "ca.pem", f.root.CertPEM(), f.inter.CertPEM())
	f.tr.Trust("clients", "root.crl", f.root.CRLPEM())
	f.tr.Trust("clients", "inter.crl", f.inter.CRL()) // DER
	f.tr.Trust("internal", "ca.crt", f.root.CertPEM())
	f.tr.WriteConfig("web.yaml", webYAML)
	f.tr.WriteConfig("other.yaml", otherYAML)
	return f
}

// path returns the absolute path of a file under the tree.
func (f *fixture) path(rel string) string { return filepath.Join(f.tr.Root, rel) }

// write replaces a file under the tree.
func (f *fixture) write(rel string, data []byte) { f.tr.Write(rel, data, 0o600) }

// editWeb rewrites config/web.yaml with old replaced by new.
func (f *fixture) editWeb(old, new string) {
	f.t.Helper()
	if !strings.Contains(webYAML, old) {
		f.t.Fatalf("web.yaml has no %q", old)
	}
	f.tr.WriteConfig("web.yaml", strings.Replace(webYAML, old, new, 1))
}

func (f *fixture) load() *config.Model {
	f.t.Helper()
	m, err := config.Load(f.tr.Certs, f.tr.Config)
	if err != nil {
		f.t.Fatalf("Load: %v", err)
	}
	return m
}

// render formats problems as "listener| text" with the tree root as $ROOT.
func (f *fixture) render(ps []config.Problem) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if p.File == "" {
			f.t.Errorf("problem without a file: %v", p)
		}
		out = append(out, p.Listener+"| "+strings.ReplaceAll(p.Error(), f.tr.Root, "$ROOT"))
	}
	return out
}

func listenerNames(m *config.Model) []string {
	var out []string
	for _, l := range m.Listeners {
		out = append(out, l.Name)
	}
	return out
}

func day(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// opensslCert has the openssl binary issue a certificate under issuer, the
// way old guides do: digest is "sha1" or "sha256"; ext is an extfile body,
// "" for none, which makes an X.509 v1 certificate. It returns the cert and
// key PEM. Tests that need it skip when openssl is missing.
func opensslCert(t *testing.T, issuerCert, issuerKey []byte, cn, digest, ext string) (certPEM, keyPEM []byte) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed: cannot make SHA-1 or v1 certificates (Go refuses to)")
	}
	dir := t.TempDir()
	w := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caCrt, caKey := w("ca.pem", issuerCert), w("ca.key", issuerKey)
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command("openssl", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	key, csr, crt := filepath.Join(dir, "k.pem"), filepath.Join(dir, "r.csr"), filepath.Join(dir, "c.pem")
	run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", csr, "-subj", "/CN="+cn)
	args := []string{"x509", "-req", "-in", csr, "-CA", caCrt, "-CAkey", caKey, "-set_serial", "4242",
		"-days", "365", "-" + digest, "-out", crt}
	if ext != "" {
		args = append(args, "-extfile", w("ext.cnf", []byte(ext)))
	}
	run(args...)
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

const (
	extCA     = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
	extServer = "basicConstraints=CA:FALSE\nsubjectAltName=DNS:web.example\nextendedKeyUsage=serverAuth\n"
)

func caKeyPEM(t *testing.T, ca *pkitest.CA) []byte {
	t.Helper()
	b, err := pki.KeyPEM(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertProblems compares problems exactly, order included.
func assertProblems(t *testing.T, kind string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("%s:\n got:\n  %s\nwant:\n  %s", kind, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
}
