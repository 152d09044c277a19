package config

import (
	"crypto"
	"crypto/x509"
	"hash/maphash"
	"io/fs"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ParseCache remembers what each file parsed to, so that a reload parses
// only the files that changed: with a 1M-serial CRL in a store, a change to
// any other file costs a read and a hash of the big one, not a parse.
//
// An entry is keyed by path and checked against the file's size, mtime and
// a hash of its content: size and mtime alone miss a rewrite within the
// clock's resolution (or a restored mtime), so the content decides. The
// hash is maphash with a per-cache random seed, not SHA-256: it detects
// change, not forgery (whoever writes the file decides its content anyway),
// and runs an order of magnitude faster over a 48 MB CRL, which every
// reload hashes.
// What is cached depends on the content only; every check that depends on
// the time or on other files (expiry, CRL signatures against the store's
// CAs) runs again on each load. Entries of files not seen by a Load are
// dropped at its end. Safe for concurrent use.
type ParseCache struct {
	mu      sync.Mutex
	seed    maphash.Seed
	entries map[string]*cacheEntry
	seen    map[string]bool // paths used since the last sweep
	parses  atomic.Int64
}

type cacheEntry struct {
	size  int64
	mtime time.Time
	sum   uint64
	id    fileID    // the file read, when the platform tells
	read  time.Time // when it was read
	val   any
}

// fileID is what identifies one version of a file beyond size and mtime:
// device, inode and ctime (which no one can set back).
type fileID struct {
	dev, ino uint64
	ctime    int64
	ok       bool
}

func idOf(info fs.FileInfo) fileID {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino, ctime: st.Ctim.Nano(), ok: true}
}

// racyWindow: a file whose mtime is this close to the moment it was read
// may have been written again within the same timestamp tick, unseen by
// size, mtime and ctime (git's "racily clean" entries); it is read and
// hashed again rather than trusted by its identity. racyWindow is for
// filesystems that keep whole seconds (HFS+) or two (FAT): an mtime with
// no fractional part. One with a fractional part comes from a filesystem
// with sub-second timestamps, which the kernel stamps from its coarse
// clock, at most one tick behind (10 ms at HZ=100; exFAT keeps 10 ms):
// fineRacyWindow is ten such ticks. A 46 MB CRL written just before a
// start or a reload was otherwise read and hashed again on every reload of
// the next 2 s: 200 ms each on this project's test machine, the first
// revocation pushed after a start included (issue 12).
const (
	racyWindow     = 2 * time.Second
	fineRacyWindow = 100 * time.Millisecond
)

// racyWindowOf is the window for a file with this mtime.
func racyWindowOf(mtime time.Time) time.Duration {
	if mtime.Nanosecond() != 0 {
		return fineRacyWindow
	}
	return racyWindow
}

// readAt is when the read of info's file started (readFile), or now. A
// write after that moment must show in the identity: so the age that
// settles a file is measured from the start of its read, not the end.
func readAt(info fs.FileInfo) time.Time {
	if ri, ok := info.(readInfo); ok {
		return ri.at
	}
	return time.Now()
}

// NewParseCache returns an empty cache.
func NewParseCache() *ParseCache {
	return &ParseCache{seed: maphash.MakeSeed(), entries: map[string]*cacheEntry{}, seen: map[string]bool{}}
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
	at := readAt(info)
	sum := maphash.Bytes(c.seed, data)
	c.mu.Lock()
	c.seen[path] = true
	e := c.entries[path]
	c.mu.Unlock()
	if e != nil && e.size == info.Size() && e.mtime.Equal(info.ModTime()) && e.sum == sum {
		if v, ok := e.val.(T); ok {
			// Read again and found the same: the file may settle now.
			c.mu.Lock()
			c.entries[path] = &cacheEntry{size: e.size, mtime: e.mtime, sum: sum, id: idOf(info), read: at, val: v}
			c.mu.Unlock()
			return v
		}
	}
	c.parses.Add(1)
	v := parse()
	c.mu.Lock()
	c.entries[path] = &cacheEntry{size: info.Size(), mtime: info.ModTime(), sum: sum, id: idOf(info), read: at, val: v}
	c.mu.Unlock()
	return v
}

// settled returns the value cached for path without reading the file when
// its identity (device, inode, size, mtime, ctime) is the one read and it
// had not been modified for its racy window when it was read: a 48 MB CRL left
// alone costs a stat per reload, not a read and a hash. Any other case
// (no identity on this platform, a recent write) reads and hashes.
func settled[T any](c *ParseCache, path string, info fs.FileInfo) (T, bool) {
	var zero T
	if c == nil || info == nil {
		return zero, false
	}
	id := idOf(info)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[path]
	if e == nil || !id.ok || e.id != id || e.size != info.Size() || !e.mtime.Equal(info.ModTime()) || !e.mtime.Before(e.read.Add(-racyWindowOf(e.mtime))) {
		return zero, false
	}
	v, ok := e.val.(T)
	if ok {
		c.seen[path] = true
	}
	return v, ok
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
