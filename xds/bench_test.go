package xds

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki"
)

// benchModel is envoy's two-listeners golden model with n copies of its
// "api" listener sharing trust/partners, whose CRL revokes 1..serials.
func benchModel(tb testing.TB, n, serials int) *config.Model {
	tb.Helper()
	dir := filepath.Join("..", "envoy", "testdata", "two-listeners", "input")
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
	out.Sources = map[string]string{}
	for i := range n {
		l := *api
		l.Name = fmt.Sprintf("api-%04d", i)
		l.Port = uint32(20000 + i)
		l.Address = fmt.Sprintf("%s:%d", l.Host, l.Port)
		out.Listeners = append(out.Listeners, &l)
		out.Sources[l.Name] = l.SourceFile
	}
	return &out
}

// BenchmarkPublisherSharedTrust: one Update of 200 listeners sharing a trust
// store with a 100,000-serial CRL, on a fresh publisher each time (the
// first-build cost: translate, validate, hash, publish).
func BenchmarkPublisherSharedTrust(b *testing.B) {
	m := benchModel(b, 200, 100_000)
	b.ReportAllocs()
	for b.Loop() {
		p := NewPublisher(cache.NewSnapshotCache(true, nodeHash{}, nil), "")
		res, err := p.Update(context.Background(), m)
		if err != nil || len(res.Serving) != 200 || !res.Pushed {
			b.Fatalf("update: %v, %d serving", err, len(res.Serving))
		}
	}
}
