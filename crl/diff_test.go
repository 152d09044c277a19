package crl

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
)

// source is a file (or made-up input) that may hold CRLs.
type source struct {
	name string
	data []byte
}

// generatedCRLs are the CRLs the repository's helpers make: pkitest (every
// CRL option), pki directly, and a pki CA directory (`certplane pki revoke`).
func generatedCRLs(t testing.TB) []source {
	root := pkitest.NewCA(t, "Diff Root")
	inter := root.Intermediate("Diff Issuing CA")
	rsa := pkitest.NewCA(t, "Diff RSA Root", pkitest.KeyType(pki.RSA2048))
	for range 5 {
		inter.Revoke(inter.Client("revoked"))
	}
	root.RevokeSerial(big.NewInt(1), time.Now().Add(-time.Hour))
	root.RevokeSerial(new(big.Int).Lsh(big.NewInt(1), 159), time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC))
	rsa.Revoke(rsa.Client("rsa-revoked"))
	out := []source{
		{"pkitest root", root.CRL()},
		{"pkitest root PEM", root.CRLPEM()},
		{"pkitest intermediate", inter.CRL()},
		{"pkitest empty", pkitest.NewCA(t, "Empty Root").CRL()},
		{"pkitest expired", root.CRL(pkitest.CRLExpired())},
		{"pkitest not yet valid", root.CRL(pkitest.CRLNotYetValid())},
		{"pkitest number", root.CRL(pkitest.CRLNumber(1 << 62))},
		{"pkitest times 2050+", root.CRL(pkitest.CRLTimes(time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2051, 1, 1, 0, 0, 0, 0, time.UTC)))},
		{"pkitest RSA", rsa.CRL()},
		{"pkitest impostor", root.Impostor().CRL()},
	}
	reasons := &x509.RevocationList{}
	for r := range 11 {
		reasons.RevokedCertificateEntries = append(reasons.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: big.NewInt(int64(100 + r)), RevocationTime: time.Now().Add(-time.Minute), ReasonCode: r})
	}
	out = append(out, source{"x509 reason codes", createCRL(t, root.CA, reasons)})
	der, err := root.CA.CRL(pki.CRLOptions{Number: big.NewInt(3), Revoked: []pki.Revoked{{Serial: big.NewInt(77)}}})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, source{"pki.CA.CRL", der})
	dir := pki.NewCADir(t.TempDir(), inter.CA)
	for range 3 {
		if _, err := dir.Revoke(inter.Client("dir").Cert, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if der, err = dir.SignCRL(time.Now(), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	return append(out, source{"pki.CADir.SignCRL", der})
}

// repoRoot is the directory holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Skipf("repository root not found: %v", err)
	}
	return dir
}

// fixtureCRLs are the CRL fixtures checked into the repository: the envoy
// goldens' trust stores and the fuzz seed corpora of config and proxy.
func fixtureCRLs(t testing.TB) []source {
	root := repoRoot(t)
	var out []source
	crls, _ := filepath.Glob(filepath.Join(root, "envoy", "testdata", "*", "input", "certs", "trust", "*", "*.crl"))
	for _, f := range crls {
		out = append(out, readSource(t, root, f))
	}
	for _, dir := range []string{"config/testdata/fuzz/FuzzParseCRL", "config/testdata/fuzz/FuzzParseTrustStore", "proxy/mtls/testdata/fuzz/FuzzCRLIndex"} {
		files, _ := filepath.Glob(filepath.Join(root, dir, "*"))
		for _, f := range files {
			for i, b := range fuzzCorpus(t, f) {
				out = append(out, source{name: strings.TrimPrefix(f, root+"/") + "#" + strconv.Itoa(i), data: b})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no CRL fixture found in the repository")
	}
	return out
}

// conformanceCRLs are ../shared/conformance's CRLs: Envoy's test fixtures
// and the x509-limbo cases' CRLs.
func conformanceCRLs(t testing.TB) []source {
	var out []source
	envoy := conformanceDir(t, "envoy")
	files, _ := filepath.Glob(filepath.Join(envoy, "data", "*", "*"))
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil && bytes.Contains(data, []byte("BEGIN X509 CRL")) {
			out = append(out, source{name: strings.TrimPrefix(f, envoy+"/"), data: data})
		}
	}
	for _, c := range limboCases(t) {
		for i, s := range c.CRLs {
			out = append(out, source{name: c.ID + "#" + strconv.Itoa(i), data: []byte(s)})
		}
	}
	return out
}

func readSource(t testing.TB, root, f string) source {
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return source{name: strings.TrimPrefix(f, root+"/"), data: data}
}

// fuzzCorpus reads the []byte values of a "go test fuzz v1" file.
func fuzzCorpus(t testing.TB, path string) [][]byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "[]byte(") {
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, []byte(s))
	}
	return out
}

// crossCheckSource cross-checks every CRL block of src (or src as DER) and
// returns how many both parsers accepted.
func crossCheckSource(t *testing.T, src source) int {
	t.Helper()
	accepted := 0
	check := func(der []byte) {
		if d := crossCheck(der); d != "" {
			t.Errorf("%s: %s", src.name, d)
		}
		if _, err := x509.ParseRevocationList(der); err == nil {
			accepted++
		}
	}
	err := Blocks(src.data, func(b Block) error {
		if b.Type == PEMType {
			check(b.DER)
		}
		return nil
	})
	if err != nil { // truncated or garbage PEM: the raw bytes must fail both ways too
		check(src.data)
	}
	return accepted
}

// TestDifferential: on every CRL the repository's helpers and fixtures make
// and every CRL of the shared conformance data, Parse and
// x509.ParseRevocationList agree (summary and entry list), or differ only
// in a documented way.
func TestDifferential(t *testing.T) {
	for _, set := range []struct {
		name string
		srcs func(testing.TB) []source
		min  int // CRLs that both must accept, so the test is not vacuous
	}{
		{"generated", generatedCRLs, 13},
		{"fixtures", fixtureCRLs, 10},
		{"conformance", conformanceCRLs, 10},
	} {
		t.Run(set.name, func(t *testing.T) {
			n := 0
			for _, src := range set.srcs(t) {
				n += crossCheckSource(t, src)
			}
			t.Logf("%d CRLs parsed alike", n)
			if n < set.min {
				t.Errorf("only %d CRLs accepted by both; want at least %d", n, set.min)
			}
		})
	}
}

type limboCase struct {
	ID             string   `json:"id"`
	Trusted        []string `json:"trusted_certs"`
	Untrusted      []string `json:"untrusted_intermediates"`
	Peer           string   `json:"peer_certificate"`
	CRLs           []string `json:"crls"`
	ValidationTime *string  `json:"validation_time"`
	Expected       string   `json:"expected_result"`
}

// limboCases are the x509-limbo cases that carry CRLs.
func limboCases(t testing.TB) []limboCase {
	raw, err := os.ReadFile(filepath.Join(conformanceDir(t, "x509-limbo"), "limbo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Testcases []limboCase `json:"testcases"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var out []limboCase
	for _, c := range doc.Testcases {
		if len(c.CRLs) > 0 {
			out = append(out, c)
		}
	}
	return out
}
