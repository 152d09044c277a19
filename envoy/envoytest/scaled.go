// Package envoytest holds fixtures shared by the tests and benchmarks of
// envoy/ and xds/.
package envoytest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/internal/rope"
	"github.com/certplane/certplane/pki"
)

// ScaledModel is envoy's "two-listeners" golden model with n copies of its
// "api" listener (each on its own port), all verifying clients against
// trust/partners, whose CRL is replaced by one revoking serials 1..serials:
// the shape that shows whether a trust store is copied per listener.
func ScaledModel(tb testing.TB, n, serials int) *config.Model {
	tb.Helper()
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(self), "..", "testdata", "two-listeners", "input")
	m, err := config.Load(filepath.Join(dir, "certs"), filepath.Join(dir, "config"))
	if err != nil || len(m.Problems) > 0 {
		tb.Fatalf("config.Load: %v %v", err, m.Problems)
	}
	crlPEM := benchCRL(tb, "Bench CRL CA", serials)
	out := *m
	out.Trust = maps.Clone(m.Trust)
	ts := *m.Trust["partners"]
	ts.CRLPEM = rope.Of(crlPEM)
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

// ScaledRopeModel is ScaledModel with a second, small CRL (of another CA)
// after the big one in trust/partners: a bundle of two CRLs, which the
// Secret holds as a rope's token when it is past rope.MinBytes.
func ScaledRopeModel(tb testing.TB, n, serials int) *config.Model {
	tb.Helper()
	m := ScaledModel(tb, n, serials)
	ts := *m.Trust["partners"]
	ts.CRLPEM = rope.Of(ts.CRLPEM.Bytes(), benchCRL(tb, "Bench CRL CA 2", 3))
	ts.Fingerprint += "+rope"
	m.Trust = maps.Clone(m.Trust)
	m.Trust["partners"] = &ts
	return m
}

// benchCRL is the PEM of a CRL of a new CA revoking serials 1..serials.
func benchCRL(tb testing.TB, name string, serials int) []byte {
	tb.Helper()
	ca, err := pki.NewRootCA(pki.Options{CommonName: name})
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
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}
