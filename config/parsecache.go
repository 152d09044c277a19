package config

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"
)

// ParseCache remembers what each file parsed to, so that a reload parses
// only the files that changed: with a 1M-serial CRL in a store, a change to
// any other file costs a read and a hash of the big one, not a parse.
//
// An entry is keyed by path and checked against the file's size, mtime and
// the SHA-256 of its content: size and mtime alone miss a rewrite within
// the clock's resolution (or a restored mtime), so the content decides.
// What is cached depends on the content only; every check that depends on
// the time or on other files (expiry, CRL signatures against the store's
// CAs) runs again on each load. Entries of files not seen by a Load are
// dropped at its end. Safe for concurrent use.
type ParseCache struct {
	mu      sync.Mutex
	entries map[string]*cacheEntry
	seen    map[string]bool // paths used since the last sweep
	parses  atomic.Int64
}

type cacheEntry struct {
	size  int64
	mtime time.Time
	sum   [32]byte
	val   any
}

// NewParseCache returns an empty cache.
func NewParseCache() *ParseCache {
	return &ParseCache{entries: map[string]*cacheEntry{}, seen: map[string]bool{}}
}

// Parses counts the files parsed (cache misses) since the cache was made.
func (c *ParseCache) Parses() int64 {
	if c == nil {
		return 0
	}
	return c.parses.Load()
}

// Len is the number of files cached.
func (c *ParseCache) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// lookup returns the value cached for path when size, mtime and content
// all match, or calls parse and caches its value. A nil cache or a nil
// info (content given without a file) always parses.
func lookup[T any](c *ParseCache, path string, data []byte, info fs.FileInfo, parse func() T) T {
	if c == nil || info == nil {
		return parse()
	}
	sum := sha256.Sum256(data)
	c.mu.Lock()
	c.seen[path] = true
	e := c.entries[path]
	c.mu.Unlock()
	if e != nil && e.size == info.Size() && e.mtime.Equal(info.ModTime()) && e.sum == sum {
		if v, ok := e.val.(T); ok {
			return v
		}
	}
	c.parses.Add(1)
	v := parse()
	c.mu.Lock()
	c.entries[path] = &cacheEntry{size: info.Size(), mtime: info.ModTime(), sum: sum, val: v}
	c.mu.Unlock()
	return v
}

// sweep drops the entries of files not looked up since the last sweep.
func (c *ParseCache) sweep() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.entries {
		if !c.seen[p] {
			delete(c.entries, p)
		}
	}
	c.seen = map[string]bool{}
}

// trust is the parse of a trust store file.
func (c *ParseCache) trust(path string, data []byte, info fs.FileInfo, parse func() *trustParse) *trustParse {
	return lookup(c, path, data, info, parse)
}

// cache is the loader's parse cache: Cache, or the one the trust memory
// holds, so that a long-running loader caches without more wiring.
func (l Loader) cache() *ParseCache {
	if l.Cache != nil {
		return l.Cache
	}
	if l.Trust != nil {
		return l.Trust.cache
	}
	return nil
}

// The parses cached besides trust files: each keeps its error, so that a
// bad file unchanged is not parsed again either.
type (
	certParse struct {
		chain []*x509.Certificate
		err   error
	}
	keyParse struct {
		key crypto.Signer
		err error
	}
	yamlParse struct {
		cf  *ConfigFile
		err error
	}
)
