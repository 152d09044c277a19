package crl

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"hash/maphash"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/certplane/certplane/internal/heapprobe"
	"github.com/certplane/certplane/pki"
)

// benchCRL returns a DER CRL of n random 128-bit serials (as `certplane
// pki` issues them) and its CA. x509.CreateRevocationList takes seconds
// and gigabytes for a million entries, so the pair is cached in
// os.TempDir() across runs.
func benchCRL(b *testing.B, n int) ([]byte, *x509.Certificate) {
	b.Helper()
	base := filepath.Join(os.TempDir(), fmt.Sprintf("certplane-crl-bench-%d", n))
	crlDER, err1 := os.ReadFile(base + ".crl")
	caDER, err2 := os.ReadFile(base + ".ca")
	if err1 == nil && err2 == nil {
		if ca, err := x509.ParseCertificate(caDER); err == nil && time.Until(ca.NotAfter) > 24*time.Hour {
			return crlDER, ca
		}
	}
	ca, err := pki.NewRootCA(pki.Options{CommonName: "Bench CRL CA"})
	if err != nil {
		b.Fatal(err)
	}
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	entries := make([]x509.RevocationListEntry, n)
	for i := range entries {
		s, err := pki.RandomSerial()
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = x509.RevocationListEntry{SerialNumber: s, RevocationTime: at}
	}
	crlDER, err = x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: at, NextUpdate: at.AddDate(5, 0, 0), RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		b.Fatal(err)
	}
	if err := pki.WriteFilesAtomic(pki.File{Path: base + ".crl", Data: crlDER, Mode: 0o644}, pki.File{Path: base + ".ca", Data: ca.Cert.Raw, Mode: 0o644}); err != nil {
		b.Logf("cache %s: %v", base, err)
	}
	return crlDER, ca.Cert
}

// packedSet is the shape of index a data plane builds from Parse's entries
// (proxy/mtls's serialSet is one): keys packed length-prefixed in one
// slice, an open-addressing table of offsets, sized from the entry count.
type packedSet struct {
	seed  maphash.Seed
	blob  []byte
	slots []uint32
}

func newPackedSet(entries, keyBytes int) *packedSet {
	size := 1
	for size < 2*entries {
		size <<= 1
	}
	return &packedSet{seed: maphash.MakeSeed(), blob: make([]byte, 0, keyBytes+entries), slots: make([]uint32, size)}
}

func (p *packedSet) slot(key []byte) (int, bool) {
	mask := len(p.slots) - 1
	for i := int(maphash.Bytes(p.seed, key)) & mask; ; i = (i + 1) & mask {
		off := p.slots[i]
		if off == 0 {
			return i, false
		}
		k := p.blob[off : off+uint32(p.blob[off-1])]
		if bytes.Equal(k, key) {
			return i, true
		}
	}
}

func (p *packedSet) add(e Entry) error {
	i, found := p.slot(e.Serial)
	if !found {
		p.blob = append(p.blob, byte(len(e.Serial)))
		p.slots[i] = uint32(len(p.blob))
		p.blob = append(p.blob, e.Serial...)
	}
	return nil
}

// index parses der twice: once to check it and count, once to fill a set
// sized for it, so no index is ever built from a CRL that fails.
func index(der []byte) (*Summary, *packedSet, error) {
	s, err := Parse(der, nil)
	if err != nil {
		return nil, nil, err
	}
	set := newPackedSet(s.Entries, len(der)/2)
	if _, err := Parse(der, set.add); err != nil {
		return nil, nil, err
	}
	return s, set, nil
}

type benchFigures struct {
	ns, bytes, allocs, peak, live float64
}

// BenchmarkCRL1M compares, on a 1M-serial CRL (about 40 MB), Parse with a
// packed serial index against x509.ParseRevocationList: time, bytes and
// allocations per op, peak heap above the baseline while parsing, and the
// heap the result keeps. The x509-over-crl line gives the ratios (x509's
// figure over Parse+index's); -v adds a side-by-side table.
//
//	go test -run '^$' -bench CRL1M -benchmem -benchtime 3x ./crl
func BenchmarkCRL1M(b *testing.B) {
	der, ca := benchCRL(b, 1_000_000)
	b.Logf("CRL: %d entries, %.1f MB", 1_000_000, float64(len(der))/1e6)
	probe := AppendSerial(nil, mustX509(b, der).RevokedCertificateEntries[123456].SerialNumber)
	figures := map[string]benchFigures{}
	run := func(name string, fn func() any) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			start := time.Now()
			for range b.N {
				runtime.KeepAlive(fn())
			}
			elapsed := time.Since(start)
			runtime.ReadMemStats(&ms1)
			b.StopTimer() // the sampled run below is not part of the figures
			peak, live := heapprobe.Peak(fn)
			f := benchFigures{
				ns:     float64(elapsed.Nanoseconds()) / float64(b.N),
				bytes:  float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(b.N),
				allocs: float64(ms1.Mallocs-ms0.Mallocs) / float64(b.N),
				peak:   float64(peak) / 1e6, live: float64(live) / 1e6,
			}
			b.ReportMetric(f.peak, "peak-heap-MB")
			b.ReportMetric(f.live, "kept-MB")
			figures[name] = f
		})
	}
	run("crl.Parse+index", func() any {
		s, set, err := index(der)
		if err != nil {
			b.Fatal(err)
		}
		if _, found := set.slot(probe); !found {
			b.Fatal("index lost a serial")
		}
		return []any{s, set}
	})
	run("crl.Parse+CheckSignatureFrom", func() any {
		s, err := Parse(der, nil)
		if err == nil {
			err = s.CheckSignatureFrom(ca)
		}
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
	run("x509.ParseRevocationList", func() any { return mustX509(b, der) })
	c, x := figures["crl.Parse+index"], figures["x509.ParseRevocationList"]
	if c.ns == 0 || x.ns == 0 {
		return // a -bench filter ran only one side
	}
	b.Logf("%-28s %12s %12s %12s %14s %9s", "", "ms/op", "MB/op", "allocs/op", "peak heap MB", "kept MB")
	for _, name := range []string{"crl.Parse+index", "crl.Parse+CheckSignatureFrom", "x509.ParseRevocationList"} {
		f := figures[name]
		b.Logf("%-28s %12.1f %12.1f %12.0f %14.1f %9.1f", name, f.ns/1e6, f.bytes/1e6, f.allocs, f.peak, f.live)
	}
	// The ratios as a result line of their own, printed without -v too.
	b.Run("x509-over-crl", func(b *testing.B) {
		for range b.N {
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(x.ns/c.ns, "time-x")
		b.ReportMetric(x.bytes/c.bytes, "B/op-x")
		b.ReportMetric(x.allocs/max(c.allocs, 1), "allocs-x")
		b.ReportMetric(x.peak/c.peak, "peak-heap-x")
		b.ReportMetric(x.live/c.live, "kept-x")
	})
}

func mustX509(b *testing.B, der []byte) *x509.RevocationList {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		b.Fatal(err)
	}
	return rl
}

// BenchmarkParse1M is the walk alone, without index: what `serve` pays to
// admit a 1M-serial CRL and keep only its summary.
func BenchmarkParse1M(b *testing.B) {
	der, _ := benchCRL(b, 1_000_000)
	b.ReportAllocs()
	b.SetBytes(int64(len(der)))
	b.ResetTimer()
	for range b.N {
		if _, err := Parse(der, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlocksPEM1M decodes the 1M-serial CRL from PEM (about 54 MB of
// text) with Blocks.
func BenchmarkBlocksPEM1M(b *testing.B) {
	der, _ := benchCRL(b, 1_000_000)
	data := pki.CRLPEM(der)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if err := Blocks(data, func(Block) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
