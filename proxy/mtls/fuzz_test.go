package mtls

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
)

// FuzzXFCC: any parsable certificate renders an XFCC value that starts with
// the right Hash, carries no raw line break or quote inside Cert, and never
// panics (the subject and SAN parsers see attacker-chosen DER).
func FuzzXFCC(f *testing.F) {
	f.Add(loadCert(f, "testdata/xfcc-client.pem").Raw)
	f.Add(loadCert(f, "testdata/xfcc-server.pem").Raw)
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		x := XFCC(c, []*x509.Certificate{c})
		sum := sha256.Sum256(c.Raw)
		if !strings.Contains(x, ";Hash="+hex.EncodeToString(sum[:])+";") && !strings.HasPrefix(x, "Hash="+hex.EncodeToString(sum[:])+";") {
			t.Fatalf("XFCC lacks the leaf hash: %q", x)
		}
		cert := urlEncodedPEM(c)
		if strings.ContainsAny(cert, "\n \"+/=") {
			t.Fatalf("Cert is not URL-encoded: %q", cert)
		}
		_ = rfc2253(c.RawIssuer)
	})
}

// FuzzSANMatcher: Envoy's DNS matching never panics, is case-insensitive,
// and without a wildcard in the SAN is plain ASCII-case-insensitive equality.
func FuzzSANMatcher(f *testing.F) {
	for _, s := range [][2]string{
		{"api.example.com", "*.example.com"}, {"foo.api.example.com", "*.example.com"},
		{"example.com", "example.com"}, {"a.b", "xn--*.b"}, {"ab.example.com", "a*b.example.com"}, {"", "*"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, san string) {
		got := dnsNameMatch(name, san)
		if got != dnsNameMatch(strings.ToUpper(name), san) && isASCII(name) {
			t.Fatalf("case-sensitive: %q vs %q", name, san)
		}
		if !strings.Contains(san, "*") && got != (asciiLower(name) == asciiLower(san)) {
			t.Fatalf("dnsNameMatch(%q, %q) = %v without a wildcard", name, san, got)
		}
		if got && strings.Contains(san, "*") && asciiLower(name) != asciiLower(san) {
			// A wildcard matches exactly one label: same number of dots.
			if strings.Count(name, ".") != strings.Count(san, ".") {
				t.Fatalf("wildcard %q matched %q across labels", san, name)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// FuzzCRLIndex: every serial a parsable CRL lists is found revoked by the
// index, and a serial it does not list is not.
func FuzzCRLIndex(f *testing.F) {
	p := newBenchCA(f)
	f.Add(p.crlDER(f, 3))
	f.Add(p.crlDER(f, 0))
	f.Fuzz(func(t *testing.T, der []byte) {
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return
		}
		c, err := newCRL(der)
		if err != nil {
			return // stricter than x509 (package crl's FuzzParseCRL covers it)
		}
		seen := map[string]bool{}
		maxSerial := big.NewInt(0)
		for _, e := range rl.RevokedCertificateEntries {
			if !c.isRevoked(e.SerialNumber) {
				t.Fatalf("serial %v listed but not revoked", e.SerialNumber)
			}
			seen[serialKey(e.SerialNumber)] = true
			if e.SerialNumber.CmpAbs(maxSerial) > 0 {
				maxSerial = new(big.Int).Abs(e.SerialNumber)
			}
		}
		absent := new(big.Int).Add(maxSerial, big.NewInt(1))
		if c.isRevoked(absent) {
			t.Fatalf("serial %v not listed but revoked", absent)
		}
		if c.revoked.len() != len(seen) {
			t.Fatalf("index holds %d serials, CRL lists %d distinct", c.revoked.len(), len(seen))
		}
	})
}
