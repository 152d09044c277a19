package xds

import (
	"context"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/certplane/certplane/envoy/envoytest"
)

// BenchmarkPublisherSharedTrust: one Update of 200 listeners sharing a trust
// store with a 100,000-serial CRL, on a fresh publisher each time (the
// first-build cost: translate, validate, hash, publish).
func BenchmarkPublisherSharedTrust(b *testing.B) {
	m := envoytest.ScaledModel(b, 200, 100_000)
	b.ReportAllocs()
	for b.Loop() {
		p := NewPublisher(cache.NewSnapshotCache(true, nodeHash{}, nil), "")
		res, err := p.Update(context.Background(), m)
		if err != nil || len(res.Serving) != 200 || !res.Pushed {
			b.Fatalf("update: %v, %d serving", err, len(res.Serving))
		}
	}
}
