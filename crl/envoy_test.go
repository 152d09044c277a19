package crl

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestEnvoyConformanceCRLs: Envoy's own test CRLs parse, are admitted
// against Envoy's CAs on the corpus date with no problem, and list exactly
// the certificates the corpus README says they revoke.
func TestEnvoyConformanceCRLs(t *testing.T) {
	dir := filepath.Join(conformanceDir(t, "envoy"), "data", "tls_test_data")
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	cert := func(name string) *x509.Certificate {
		var out *x509.Certificate
		if err := Blocks(read(name), func(b Block) error {
			if out == nil {
				var err error
				out, err = x509.ParseCertificate(b.DER)
				return err
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out
	}
	cas := []*x509.Certificate{cert("ca_cert.pem"), cert("intermediate_ca_cert.pem")}
	for _, c := range []struct {
		file    string
		issuer  *x509.Certificate
		revoked *x509.Certificate
		clear   *x509.Certificate
	}{
		{"ca_cert.crl", cas[0], cert("san_dns_cert.pem"), cert("san_dns2_cert.pem")},
		{"intermediate_ca_cert.crl", cas[1], cert("san_dns3_cert.pem"), cert("san_dns4_cert.pem")},
	} {
		index := map[string]bool{}
		err := Blocks(read(c.file), func(b Block) error {
			s, err := Parse(b.DER, func(e Entry) error { index[string(e.Serial)] = true; return nil })
			if err != nil {
				return err
			}
			issuer, problems, err := Admit(s, cas, at)
			if err != nil || issuer != c.issuer || len(problems) != 0 {
				t.Errorf("%s: Admit: issuer %v, problems %v, %v; want admitted by %s", c.file, issuer, problems, err, c.issuer.Subject)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !index[string(AppendSerial(nil, c.revoked.SerialNumber))] || index[string(AppendSerial(nil, c.clear.SerialNumber))] {
			t.Errorf("%s: revoked %v (want true), clear %v (want false)", c.file,
				index[string(AppendSerial(nil, c.revoked.SerialNumber))], index[string(AppendSerial(nil, c.clear.SerialNumber))])
		}
	}
}
