package envoy

import (
	"crypto/x509"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/certplane/certplane/pki"
)

// The golden inputs need certificates whose bytes never change, else every
// run would rewrite the goldens. They are generated once, with fixed
// validity, by `go test ./envoy -run TestRegenCerts -regen-certs`, and
// checked in under testdata/<case>/input/certs.
var regenCerts = flag.Bool("regen-certs", false, "regenerate the golden input certificates under testdata/<case>/input/certs")

var (
	goldenNotBefore = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	goldenNotAfter  = time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
)

// goldenBundles lists, per case, which bundles of the fixed PKI its
// certificate directory holds.
var goldenBundles = map[string][]string{
	"mode-off":            {"payments"},
	"mode-optional":       {"payments", "partners"},
	"mode-passthrough":    {"payments"},
	"mode-verify":         {"payments", "partners"},
	"crl-full-chain":      {"payments", "partners", "partners-crl"},
	"crl-leaf-only":       {"payments", "partners", "partners-crl"},
	"san-rules":           {"payments", "partners"},
	"sni-multi-cert":      {"payments", "api", "admin", "partners"},
	"sni-shared":          {"payments", "api", "admin", "partners"},
	"headers-alb":         {"payments", "partners"},
	"headers-xfcc-alb":    {"payments", "partners"},
	"upstream-tls":        {"payments", "internal"},
	"upstream-mtls":       {"payments", "internal", "edge-client"},
	"tls-policy-custom":   {"payments"},
	"strict-dns":          {"payments"},
	"no-ca-names":         {"payments", "partners"},
	"two-listeners":       {"payments", "api", "partners", "partners-crl"},
	"authz-routes":        {"payments", "partners"},
	"authz-subjects":      {"payments", "partners"},
	"authz-issuer":        {"payments", "partners"},
	"xfcc-append-forward": {"payments", "partners"},
	"xfcc-forward-only":   {"payments", "partners"},
	"routing":             {"payments"},
	"ocsp-best-effort":    {"payments", "partners"},
}

func TestRegenCerts(t *testing.T) {
	if !*regenCerts {
		t.Skip("golden certificates are checked in; pass -regen-certs to regenerate them (then -update the goldens)")
	}
	files := goldenPKI(t)
	for c, bundles := range goldenBundles {
		dir := filepath.Join("testdata", c, "input", "certs")
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		for _, b := range bundles {
			paths := make([]string, 0, len(files[b]))
			for p := range files[b] {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			for _, p := range paths {
				full := filepath.Join(dir, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				mode := os.FileMode(0o644)
				if filepath.Ext(p) == ".key" {
					mode = 0o600
				}
				if err := os.WriteFile(full, files[b][p], mode); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// goldenPKI builds the fixed PKI: bundle -> path under certs/ -> content.
func goldenPKI(t *testing.T) map[string]map[string][]byte {
	t.Helper()
	opts := func(cn string) pki.Options {
		return pki.Options{CommonName: cn, Organization: "certplane golden", NotBefore: goldenNotBefore, NotAfter: goldenNotAfter}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	keyPEM := func(l *pki.Leaf) []byte {
		b, err := pki.KeyPEM(l.Key)
		must(err)
		return b
	}

	edgeRoot, err := pki.NewRootCA(opts("Golden Edge Root CA"))
	must(err)
	edge, err := edgeRoot.NewIntermediate(opts("Golden Edge Issuing CA"))
	must(err)
	server := func(cn string, dns ...string) *pki.Leaf {
		o := opts(cn)
		o.DNSNames = dns
		l, err := edge.IssueServer(o)
		must(err)
		return l
	}
	payments := server("payments.example.com", "payments.example.com", "www.payments.example.com")
	api := server("api.example.com", "api.example.com", "*.api.example.com")
	admin := server("admin.example.com", "admin.example.com", "admin.payments.example.com")

	partnersRoot, err := pki.NewRootCA(opts("Golden Partners Root CA"))
	must(err)
	partners, err := partnersRoot.NewIntermediate(opts("Golden Partners Issuing CA"))
	must(err)
	revoked, err := partners.IssueClient(opts("revoked.partner.example"))
	must(err)
	crl := func(ca *pki.CA, rev ...*x509.Certificate) []byte {
		o := pki.CRLOptions{Number: big.NewInt(1), ThisUpdate: goldenNotBefore, NextUpdate: goldenNotAfter}
		for _, c := range rev {
			o.Revoked = append(o.Revoked, pki.Revoked{Serial: c.SerialNumber, At: goldenNotBefore})
		}
		der, err := ca.CRL(o)
		must(err)
		return pki.CRLPEM(der)
	}

	internal, err := pki.NewRootCA(opts("Golden Internal Root CA"))
	must(err)
	edgeClient, err := internal.IssueClient(opts("edge-client"))
	must(err)

	return map[string]map[string][]byte{
		"payments": {
			"server/payments/tls.crt": payments.ChainPEM(),
			"server/payments/tls.key": keyPEM(payments),
		},
		"api": { // the flat layout
			"server/api.crt": api.ChainPEM(),
			"server/api.key": keyPEM(api),
		},
		"admin": {
			"server/admin/tls.crt": admin.ChainPEM(),
			"server/admin/tls.key": keyPEM(admin),
		},
		"partners": {
			"trust/partners/ca.pem": pki.CertPEM(partnersRoot.Cert, partners.Cert),
		},
		"partners-crl": {
			"trust/partners/root.crl":    crl(partnersRoot),
			"trust/partners/issuing.crl": crl(partners, revoked.Cert),
		},
		"internal": {
			"trust/internal/ca.pem": pki.CertPEM(internal.Cert),
		},
		"edge-client": {
			"client/edge-client/tls.crt": edgeClient.ChainPEM(),
			"client/edge-client/tls.key": keyPEM(edgeClient),
		},
	}
}
