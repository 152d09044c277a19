package xds

import (
	"bytes"
	"context"
	"errors"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/envoy/envoytest"
	"github.com/certplane/certplane/internal/rope"
)

// ropeSecret publishes the rope model and returns its trust Secret, as
// served (holding the token), and the rope.
func ropeSecret(t *testing.T) (*tlsv3.Secret, *rope.Rope) {
	t.Helper()
	m := envoytest.ScaledRopeModel(t, 2, 20_000)
	p := NewPublisher(cache.NewSnapshotCache(true, nodeHash{}, nil), "")
	if _, err := p.Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	sec := p.Served().Snapshot.Resources[types.Secret].Items["trust/partners"].Resource.(*tlsv3.Secret)
	r := m.Trust["partners"].CRLPEM
	if tok := sec.GetValidationContext().GetCrl().GetInlineBytes(); !rope.IsToken(tok) || len(r.Chunks()) < 2 {
		t.Fatalf("the rope model's Secret holds %d bytes, not a token of a rope of 2 chunks", len(tok))
	}
	return sec, r
}

// TestSpliceRopeEqualsMarshal: a Secret holding a rope's token is spliced
// to the marshalling of the Secret with the rope's bytes joined, byte for
// byte, its chunks referenced, not copied.
func TestSpliceRopeEqualsMarshal(t *testing.T) {
	sec, r := ropeSecret(t)
	full, err := rope.Materialize(sec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(full.GetValidationContext().GetCrl().GetInlineBytes(), bytes.Join(r.Chunks(), nil)) {
		t.Fatal("Materialize does not give the rope's bytes")
	}
	if !rope.IsToken(sec.GetValidationContext().GetCrl().GetInlineBytes()) {
		t.Fatal("Materialize modified the Secret")
	}
	want, err := cache.MarshalResource(full)
	if err != nil {
		t.Fatal(err)
	}
	for _, min := range []int{1, 1 << 10, lazyMinBytes, 1 << 30} {
		s, err := splice(sec, min)
		if err != nil || s == nil {
			t.Fatalf("min %d: splice: %v %v", min, s, err)
		}
		if got := joined(s); !bytes.Equal(got, want) {
			t.Errorf("min %d: spliced encoding differs from proto.Marshal of the joined Secret (%d vs %d bytes)", min, len(got), len(want))
		}
		for _, c := range r.Chunks() {
			found := false
			for _, p := range s.pieces {
				if len(p) == len(c) && &p[0] == &c[0] {
					found = true
				}
			}
			if !found {
				t.Errorf("min %d: a chunk of %d bytes was copied into the encoding", min, len(c))
			}
		}
	}
	// The lazy form the cache holds: its stub stands for the same bytes.
	l, err := newLazy(sec, sec.GetName())
	if err != nil || l == nil {
		t.Fatalf("newLazy: %v %v", l, err)
	}
	if got := joined(l.h.enc.Load()); !bytes.Equal(got, want) {
		t.Error("the lazy Secret's encoding differs from the marshalling")
	}
}

// forged is sec with its token pointing at no rope (a digest never made).
func forged(sec *tlsv3.Secret) *tlsv3.Secret {
	out := proto.Clone(sec).(*tlsv3.Secret)
	tok := out.GetValidationContext().GetCrl().GetInlineBytes()
	tok[len(tok)-1] ^= 0xff
	return out
}

// TestLostRopeFailsClosed: a token whose rope cannot be found is never
// sent, hashed or materialized as if it were the CRLs: each fails.
func TestLostRopeFailsClosed(t *testing.T) {
	sec, _ := ropeSecret(t)
	bad := forged(sec)
	if _, err := splice(bad, lazyMinBytes); !errors.Is(err, rope.ErrLost) {
		t.Errorf("splice: %v, want ErrLost", err)
	}
	if _, err := newHasher().sum(bad); !errors.Is(err, rope.ErrLost) {
		t.Errorf("sum: %v, want ErrLost", err)
	}
	if _, err := rope.Materialize(bad); !errors.Is(err, rope.ErrLost) {
		t.Errorf("Materialize: %v, want ErrLost", err)
	}
	snap := &cache.Snapshot{}
	snap.Resources[types.Secret] = cache.NewResources("v", []types.Resource{bad})
	if _, err := (wireResources{}).snapshot(snap, newHasher()); err == nil {
		t.Error("a Secret with a lost rope was made servable (wire)")
	}
	if _, err := materialized(snap); err == nil {
		t.Error("a Secret with a lost rope was made servable (stock cache)")
	}
}

// TestRopeSums: the content hash of a Secret holding a token follows the
// rope's content: equal bundles hash the same, a changed CRL changes it.
func TestRopeSums(t *testing.T) {
	sec, r := ropeSecret(t)
	h := newHasher()
	a, err := h.sum(sec)
	if err != nil {
		t.Fatal(err)
	}
	ch := r.Chunks()
	same := rope.Of(ch...)
	other := rope.Of(ch[0], append(append([]byte{}, ch[1]...), '\n'))
	sum := func(rp *rope.Rope) [32]byte {
		s := proto.Clone(sec).(*tlsv3.Secret)
		s.GetValidationContext().GetCrl().Specifier = &core.DataSource_InlineBytes{InlineBytes: rp.Inline()}
		out, err := newHasher().sum(s)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if sum(same) != a {
		t.Error("an equal bundle hashes differently")
	}
	if sum(other) == a {
		t.Error("a changed bundle hashes the same")
	}
}

// TestStockCacheGetsRopeBytes: a publisher whose cache is served by a
// stock codec (no wireCodec to splice tokens) puts the Secret with its
// CRLs joined in the cache, never the token; Served keeps the token.
func TestStockCacheGetsRopeBytes(t *testing.T) {
	m := envoytest.ScaledRopeModel(t, 2, 20_000)
	c := cache.NewSnapshotCache(true, nodeHash{}, nil)
	p := NewPublisher(c, "")
	if _, err := p.Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	snap, err := c.GetSnapshot(allNodes)
	if err != nil {
		t.Fatal(err)
	}
	sec := snap.GetResources(resource.SecretType)["trust/partners"].(*tlsv3.Secret)
	if got, want := sec.GetValidationContext().GetCrl().GetInlineBytes(), bytes.Join(m.Trust["partners"].CRLPEM.Chunks(), nil); !bytes.Equal(got, want) {
		t.Errorf("the cache's trust Secret holds %d bytes of CRL, want the %d of the bundle", len(got), len(want))
	}
	served := p.Served().Snapshot.Resources[types.Secret].Items["trust/partners"].Resource.(*tlsv3.Secret)
	if !rope.IsToken(served.GetValidationContext().GetCrl().GetInlineBytes()) {
		t.Error("Served's trust Secret does not hold the token: the test does not cover ropes")
	}
}
