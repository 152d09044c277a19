package envoy

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki"
)

// scaledModel is the two-listeners golden model with n copies of its "api"
// listener, all verifying clients against trust/partners, whose CRL is
// replaced by one revoking serials 1..serials.
func scaledModel(tb testing.TB, n, serials int) *config.Model {
	tb.Helper()
	dir := filepath.Join("testdata", "two-listeners", "input")
	m, err := config.Load(filepath.Join(dir, "certs"), filepath.Join(dir, "config"))
	if err != nil || len(m.Problems) > 0 {
		tb.Fatalf("config.Load: %v %v", err, m.Problems)
	}
	ca, err := pki.NewRootCA(pki.Options{CommonName: "Bench CRL CA"})
	if err != nil {
		tb.Fatal(err)
	}
	at := time.Now().Add(-time.Hour)
	entries := make([]x509.RevocationListEntry, serials)
	for i := range entries {
		entries[i] = x509.RevocationListEntry{SerialNumber: big.NewInt(int64(i + 1)), RevocationTime: at}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: at, NextUpdate: at.Add(48 * time.Hour), RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		tb.Fatal(err)
	}
	out := *m
	out.Trust = maps.Clone(m.Trust)
	ts := *m.Trust["partners"]
	ts.CRLPEM = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	out.Trust["partners"] = &ts
	var api *config.Listener
	for _, l := range m.Listeners {
		if l.Name == "api" {
			api = l
		}
	}
	out.Listeners = nil
	for i := range n {
		l := *api
		l.Name = fmt.Sprintf("api-%04d", i)
		l.Port = uint32(20000 + i)
		l.Address = fmt.Sprintf("%s:%d", l.Host, l.Port)
		out.Listeners = append(out.Listeners, &l)
	}
	return &out
}

// BenchmarkTranslateSharedTrust: 200 listeners share one trust store whose
// CRL revokes 100,000 serials. The trust Secret is built once per Translate
// and its inline bytes alias the model's, so B/op does not grow with
// listeners × CRL size.
func BenchmarkTranslateSharedTrust(b *testing.B) {
	m := scaledModel(b, 200, 100_000)
	b.ReportMetric(float64(len(m.Trust["partners"].CRLPEM)), "crl-bytes")
	b.ReportAllocs()
	for b.Loop() {
		units, err := Translate(m)
		if err != nil {
			b.Fatal(err)
		}
		if len(units) != 200 || len(units["api-0000"][resource.SecretType]) != 2 {
			b.Fatalf("%d units", len(units))
		}
	}
}
