package envoy

import (
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/envoy/envoytest"
)

// BenchmarkTranslateSharedTrust: 200 listeners share one trust store whose
// CRL revokes 100,000 serials. The trust Secret is built once per Translate
// and its inline bytes alias the model's, so B/op does not grow with
// listeners × CRL size.
func BenchmarkTranslateSharedTrust(b *testing.B) {
	m := envoytest.ScaledModel(b, 200, 100_000)
	b.ReportMetric(float64(m.Trust["partners"].CRLPEM.Len()), "crl-bytes")
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
