package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/certplane/certplane/pki/pkitest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func cacheVerifier(t *testing.T, caPEM, crlPEM []byte, now func() time.Time) *Verifier {
	t.Helper()
	v, err := NewVerifier(&tlsv3.CertificateValidationContext{TrustedCa: inlineDS(caPEM), Crl: inlineDS(crlPEM)}, true, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func peerOf(l *pkitest.Leaf) tls.ConnectionState {
	return tls.ConnectionState{PeerCertificates: append([]*x509.Certificate{l.Cert}, l.Chain...)}
}

func wantFailure(t *testing.T, what string, got *Failure, reason Reason, text string) {
	t.Helper()
	if got == nil || got.Reason != reason || got.Error() != string(reason)+": "+text {
		t.Errorf("%s: got %v, want %s: %s", what, got, reason, text)
	}
}

// TestChainCacheKeepsEveryCheck: a cached chain skips only path building
// and signatures. Revocation in a new CRL (a new Verifier), the leaf's
// expiry, the CRL's expiry, and the chain's own defects still refuse it,
// with the same failure an uncached verification gives.
func TestChainCacheKeepsEveryCheck(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	clk := &clock{t: t0}
	root := pkitest.NewCA(t, "Cache Root")
	inter := root.Intermediate("Cache Issuing")
	leaf := inter.Client("cached", pkitest.ValidBetween(t0.Add(-time.Hour), t0.Add(2*time.Hour)))
	crlTimes := pkitest.CRLTimes(t0.Add(-time.Hour), t0.Add(time.Hour))
	crls := append(root.CRLPEM(crlTimes), inter.CRLPEM(crlTimes)...)
	v := cacheVerifier(t, root.CertPEM(), crls, clk.now)
	cs := peerOf(leaf)

	if f := v.Verify(cs); f != nil {
		t.Fatalf("first handshake: %v", f)
	}
	if v.chains.len() != 1 || v.chains.hits.Load() != 0 {
		t.Fatalf("after one verification: %d entries, %d hits", v.chains.len(), v.chains.hits.Load())
	}
	if f := v.Verify(cs); f != nil || v.chains.hits.Load() != 1 {
		t.Fatalf("second handshake: %v, %d hits (want a cache hit)", f, v.chains.hits.Load())
	}

	// Revoked after caching: the new CRL comes as a new Verifier, which
	// refuses the leaf; the old one (cache warm) is what connections drop.
	inter.Revoke(leaf)
	revoking := append(root.CRLPEM(crlTimes), inter.CRLPEM(crlTimes)...)
	v2 := cacheVerifier(t, root.CertPEM(), revoking, clk.now)
	wantFailure(t, "revoked after caching", v2.Recheck(cs.PeerCertificates), ReasonRevoked,
		`certificate "CN=cached" serial `+serialHex(leaf.Cert.SerialNumber)+` is revoked by the CRL of "CN=Cache Issuing"`)

	// The CRL expires while the chain is cached: refused, from the cache.
	clk.set(t0.Add(90 * time.Minute))
	hits := v.chains.hits.Load()
	f := v.Verify(cs)
	wantFailure(t, "CRL expired, chain cached", f, ReasonCRLExpired,
		`CRL of "CN=Cache Issuing" expired at `+t0.Add(time.Hour).Format(time.RFC3339))
	if v.chains.hits.Load() != hits+1 {
		t.Error("the CRL check did not run on a cached chain")
	}

	// The leaf expires: the cached entry no longer applies, and the
	// failure is exactly a fresh Verifier's.
	clk.set(t0.Add(3 * time.Hour))
	hits = v.chains.hits.Load()
	got := v.Verify(cs)
	fresh := cacheVerifier(t, root.CertPEM(), crls, clk.now).Verify(cs)
	if got == nil || fresh == nil || got.Reason != ReasonExpired || got.Error() != fresh.Error() {
		t.Errorf("expired cached chain: got %v, a fresh verifier says %v", got, fresh)
	}
	if v.chains.hits.Load() != hits {
		t.Error("an expired chain was served from the cache")
	}
}

// TestChainCacheNeverCachesFailuresAndIsBounded: an untrusted chain leaves
// no entry, and the cache holds at most its bound.
func TestChainCacheNeverCachesFailuresAndIsBounded(t *testing.T) {
	root := pkitest.NewCA(t, "Bound Root")
	v := cacheVerifier(t, root.CertPEM(), root.CRLPEM(), nil)
	other := pkitest.NewCA(t, "Stranger").Client("eve")
	if f := v.Verify(peerOf(other)); f == nil || f.Reason != ReasonUnknownCA {
		t.Fatalf("stranger: %v", f)
	}
	if f := v.Verify(peerOf(other)); f == nil || v.chains.len() != 0 {
		t.Fatalf("a failure was cached: %d entries", v.chains.len())
	}
	v.chains.max = 3
	for i := range 5 {
		if f := v.Verify(peerOf(root.Client("c" + string(rune('a'+i))))); f != nil {
			t.Fatal(f)
		}
	}
	if n := v.chains.len(); n != 3 {
		t.Errorf("cache holds %d entries, bound 3", n)
	}
}
