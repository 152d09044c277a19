package pkitest_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/pki/pkitest"
)

func verify(t *testing.T, ca *pkitest.CA, l *pkitest.Leaf, eku x509.ExtKeyUsage, at time.Time) error {
	t.Helper()
	inter := x509.NewCertPool()
	for _, c := range l.Chain {
		inter.AddCert(c)
	}
	_, err := l.Cert.Verify(x509.VerifyOptions{
		Roots: ca.Pool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{eku}, CurrentTime: at,
	})
	return err
}

func TestVerdicts(t *testing.T) {
	root := pkitest.NewCA(t, "test root")
	inter := root.Intermediate("test issuing CA")
	other := pkitest.NewCA(t, "untrusted root")
	now := time.Now()
	srv := inter.Server("localhost", pkitest.IPs("127.0.0.1"))
	if got := srv.Cert.DNSNames; len(got) != 1 || got[0] != "localhost" {
		t.Fatalf("server DNS SANs = %v, want [localhost]", got)
	}
	if len(srv.Cert.IPAddresses) != 1 || srv.Cert.IPAddresses[0].String() != "127.0.0.1" {
		t.Fatalf("server IP SANs = %v", srv.Cert.IPAddresses)
	}
	ipOnly := root.Server("10.0.0.1")
	if len(ipOnly.Cert.DNSNames) != 0 || ipOnly.Cert.IPAddresses[0].String() != "10.0.0.1" {
		t.Fatalf("IP-named server: DNS %v IP %v", ipOnly.Cert.DNSNames, ipOnly.Cert.IPAddresses)
	}
	cases := []struct {
		name    string
		leaf    *pkitest.Leaf
		eku     x509.ExtKeyUsage
		wantErr string // "" for success, else the start of x509's message
	}{
		{"server via intermediate", srv, x509.ExtKeyUsageServerAuth, ""},
		{"client", root.Client("alice", pkitest.URIs("spiffe://example.org/alice")), x509.ExtKeyUsageClientAuth, ""},
		{"expired", root.Client("old", pkitest.Expired()), x509.ExtKeyUsageClientAuth, "x509: certificate has expired or is not yet valid: current time"},
		{"not yet valid", root.Client("early", pkitest.NotYetValid()), x509.ExtKeyUsageClientAuth, "x509: certificate has expired or is not yet valid: current time"},
		{"wrong EKU", root.Client("eve", pkitest.EKU(x509.ExtKeyUsageServerAuth)), x509.ExtKeyUsageClientAuth, "x509: certificate specifies an incompatible key usage"},
		{"no EKU", root.Client("bare", pkitest.NoEKU()), x509.ExtKeyUsageClientAuth, ""},
		{"untrusted CA", other.Client("stranger"), x509.ExtKeyUsageClientAuth, "x509: certificate signed by unknown authority"},
		{"impostor CA", root.Impostor().Client("forger"), x509.ExtKeyUsageClientAuth, `x509: certificate signed by unknown authority (possibly because of "x509: ECDSA verification failure"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := verify(t, root, c.leaf, c.eku, now)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("verify: %v, want success", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) {
				t.Fatalf("verify: %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestCRLs(t *testing.T) {
	root := pkitest.NewCA(t, "test root")
	mallory := root.Client("mallory")
	root.Revoke(mallory)
	first, err := x509.ParseRevocationList(root.CRL())
	if err != nil {
		t.Fatal(err)
	}
	if err := first.CheckSignatureFrom(root.Cert); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if n := len(first.RevokedCertificateEntries); n != 1 || first.RevokedCertificateEntries[0].SerialNumber.Cmp(mallory.Serial()) != 0 {
		t.Fatalf("CRL entries = %v, want mallory's serial", first.RevokedCertificateEntries)
	}
	second, err := x509.ParseRevocationList(root.CRL())
	if err != nil {
		t.Fatal(err)
	}
	if first.Number.Int64() != 1 || second.Number.Int64() != 2 {
		t.Fatalf("CRL numbers = %v, %v; want 1, 2", first.Number, second.Number)
	}
	expired, err := x509.ParseRevocationList(root.CRL(pkitest.CRLExpired()))
	if err != nil {
		t.Fatal(err)
	}
	if !expired.NextUpdate.Before(time.Now()) {
		t.Fatalf("expired CRL nextUpdate %v is not in the past", expired.NextUpdate)
	}
	forged, err := x509.ParseRevocationList(root.Impostor().CRL())
	if err != nil {
		t.Fatal(err)
	}
	if forged.Issuer.String() != root.Cert.Subject.String() {
		t.Fatalf("impostor CRL issuer %q, want %q", forged.Issuer, root.Cert.Subject)
	}
	if err := forged.CheckSignatureFrom(root.Cert); err == nil {
		t.Fatal("impostor CRL verified against the real CA")
	}
}

func TestTreeLayouts(t *testing.T) {
	s := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001", "127.0.0.1:9002")
	s.ServerFlat("flat", s.Server)
	s.ClientFlat("up", s.Alice)
	s.Client("up2", s.Alice)
	for rel, mode := range map[string]os.FileMode{
		"certs/server/default/tls.crt": 0o644,
		"certs/server/default/tls.key": 0o600,
		"certs/server/flat.crt":        0o644,
		"certs/server/flat.key":        0o600,
		"certs/client/up.key":          0o600,
		"certs/client/up2/tls.key":     0o600,
		"certs/trust/clients/ca.pem":   0o644,
		"certs/trust/clients/ca.crl":   0o644,
		"config/listeners.yaml":        0o644,
	} {
		fi, err := os.Stat(filepath.Join(s.Root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", rel, fi.Mode().Perm(), mode)
		}
	}
	cfg, err := os.ReadFile(s.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), `endpoints: ["127.0.0.1:9001", "127.0.0.1:9002"]`) {
		t.Fatalf("config lacks endpoints:\n%s", cfg)
	}
	if _, err := s.Server.TLS().Leaf.Verify(x509.VerifyOptions{Roots: s.CA.Pool(), DNSName: "localhost"}); err != nil {
		t.Fatalf("server cert: %v", err)
	}
}

func TestKubeSecretSwap(t *testing.T) {
	tr := pkitest.NewTree(t)
	ca := pkitest.NewCA(t, "test root")
	a, b := ca.Server("a.example"), ca.Server("b.example")
	tr.KubeSecret("server/default", a)
	crt := filepath.Join(tr.Certs, "server", "default", "tls.crt")
	got, err := os.ReadFile(crt)
	if err != nil || string(got) != string(a.CertPEM()) {
		t.Fatalf("first secret: err %v, content matches %v", err, string(got) == string(a.CertPEM()))
	}
	tr.KubeSecret("server/default", b)
	got, err = os.ReadFile(crt)
	if err != nil || string(got) != string(b.CertPEM()) {
		t.Fatalf("rotated secret: err %v, content matches %v", err, string(got) == string(b.CertPEM()))
	}
	entries, err := os.ReadDir(filepath.Dir(crt))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 4 { // ..2026_x, ..data, tls.crt, tls.key
		t.Fatalf("secret dir holds %v, want the old timestamped dir removed", names)
	}
}
