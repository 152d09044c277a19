package mtls

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/certplane/certplane/pki"
)

type benchCA struct{ ca *pki.CA }

func newBenchCA(t testing.TB) *benchCA {
	return &benchCA{ca: ok(pki.NewRootCA(pki.Options{CommonName: "Bench CA"}))}
}

// crlDER signs a CRL revoking serials 1..n.
func (b *benchCA) crlDER(t testing.TB, n int) []byte {
	entries := make([]x509.RevocationListEntry, n)
	at := time.Now().Add(-time.Hour)
	for i := range entries {
		entries[i] = x509.RevocationListEntry{SerialNumber: big.NewInt(int64(i + 1)), RevocationTime: at}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: at, NextUpdate: at.Add(48 * time.Hour), RevokedCertificateEntries: entries,
	}, b.ca.Cert, b.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// BenchmarkRevocationLookup: the per-handshake cost of a serial lookup does
// not grow with the CRL (a map, not a scan).
func BenchmarkRevocationLookup(b *testing.B) {
	ca := newBenchCA(b)
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		c, err := newCRL(ca.crlDER(b, n))
		if err != nil {
			b.Fatal(err)
		}
		probes := []*big.Int{big.NewInt(int64(n / 2)), big.NewInt(int64(n + 7))}
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			hits := 0
			for i := 0; b.Loop(); i++ {
				if c.isRevoked(probes[i&1]) {
					hits++
				}
			}
			if hits == 0 {
				b.Fatal("no revoked serial found")
			}
		})
	}
}
