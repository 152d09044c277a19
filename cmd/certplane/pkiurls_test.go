package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPKIRevocationURLs: --crl-url and --ocsp-url land in the CRL
// Distribution Points and the Authority Information Access of what pki ca,
// server and client issue; a non-http(s) URL is a usage error.
func TestPKIRevocationURLs(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	const crlURL, ocspURL = "http://pki.example/root.crl", "http://ocsp.pki.example"
	mustCLI(t, "pki", "ca", "--out", ca, "--crl-url", crlURL, "--ocsp-url", ocspURL)
	mustCLI(t, "pki", "server", "--ca", ca, "--dns", "api.example", "--out", filepath.Join(dir, "srv"), "--crl-url", crlURL)
	mustCLI(t, "pki", "client", "--ca", ca, "--name", "alice", "--out", filepath.Join(dir, "cl"), "--crl-url", crlURL, "--ocsp-url", ocspURL)
	for _, tc := range []struct {
		file      string
		crl, ocsp bool
	}{
		{filepath.Join(ca, "ca.crt"), true, true},
		{filepath.Join(dir, "srv", "tls.crt"), true, false},
		{filepath.Join(dir, "cl", "alice.crt"), true, true},
	} {
		c := readCert(t, tc.file)
		if slices.Contains(c.CRLDistributionPoints, crlURL) != tc.crl || slices.Contains(c.OCSPServer, ocspURL) != tc.ocsp {
			t.Errorf("%s: CDP %v, OCSP %v", tc.file, c.CRLDistributionPoints, c.OCSPServer)
		}
	}
	_, errb, code := cli(t, "pki", "client", "--ca", ca, "--name", "bob", "--out", filepath.Join(dir, "cl"), "--crl-url", "ldap://pki.example/cn=root")
	if code != 2 || !strings.Contains(errb, `--crl-url "ldap://pki.example/cn=root" is not an http:// or https:// URL`) {
		t.Fatalf("exit %d, stderr %s", code, errb)
	}
}
