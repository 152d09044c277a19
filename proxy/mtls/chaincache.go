package mtls

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// chainCacheSize bounds the verified chains one Verifier remembers. An entry
// is a few pointers (the paths' certificates are the peer's parsed ones and
// the trust store's), so a full cache costs a few MB.
const chainCacheSize = 4096

// chainCache remembers, per presented peer chain, the paths crypto/x509
// built and whose signatures it checked, so that a client reconnecting
// with the same chain skips path building and signature verification
// (about 12% of a handshake). Only that is cached: the leaf checks, the
// validity window, max depth, CA key usage, CRLs, SANs and pins are applied
// on every handshake. Failures are never cached. A Verifier is immutable
// for one trust/CRL version and owns its cache, so a new trust store or CRL
// starts empty.
type chainCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]*verifiedChains
	hits    atomic.Int64 // for tests
}

// verifiedChains is one cached result, valid while now is within
// [notBefore, notAfter]: the latest NotBefore and the earliest NotAfter over
// every certificate of every path, so that the paths are exactly what
// x509.Verify would return at any time in the window.
type verifiedChains struct {
	chains              [][]*x509.Certificate
	notBefore, notAfter time.Time
}

func newChainCache(max int) *chainCache {
	return &chainCache{max: max, entries: map[[sha256.Size]byte]*verifiedChains{}}
}

// chainKey hashes the DER of every presented certificate, length-prefixed,
// in order: the same bytes in the same order are the same chain.
func chainKey(peer []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	for _, c := range peer {
		if c == nil {
			binary.BigEndian.PutUint32(n[:], 0xffffffff)
			h.Write(n[:])
			continue
		}
		binary.BigEndian.PutUint32(n[:], uint32(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// get returns the cached paths of key when now is inside their window.
func (c *chainCache) get(key [sha256.Size]byte, now time.Time) [][]*x509.Certificate {
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e == nil || now.Before(e.notBefore) || now.After(e.notAfter) {
		return nil
	}
	c.hits.Add(1)
	return e.chains
}

// put remembers chains, which x509.Verify returned without error.
func (c *chainCache) put(key [sha256.Size]byte, chains [][]*x509.Certificate) {
	e := &verifiedChains{chains: chains}
	for _, ch := range chains {
		for _, cert := range ch {
			if e.notBefore.IsZero() || cert.NotBefore.After(e.notBefore) {
				e.notBefore = cert.NotBefore
			}
			if e.notAfter.IsZero() || cert.NotAfter.Before(e.notAfter) {
				e.notAfter = cert.NotAfter
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		// Random eviction (map order): cheap, and a hot chain that is
		// evicted comes back on its next handshake.
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = e
}

func (c *chainCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
