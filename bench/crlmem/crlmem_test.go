// Package crlmem measures what issue #12 changed in the memory and reload
// time of a trust store holding a 1M-serial CRL: serve's model (parsed
// x509.RevocationList before, summary and PEM after), a reload after
// another CA's CRL changes (every file parsed vs the parse cache), and the
// proxy's serial index build (x509 parse then index vs streaming parse).
// The figures go to bench/RESULTS.md ("CRL memory and reload, issue #12").
//
//	go test -run '^$' -bench . -benchtime 3x ./bench/crlmem
package crlmem

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/internal/heapprobe"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/proxy/mtls"
)

const serials = 1_000_000

// bigCRL returns a DER CRL of n random 128-bit serials and its CA's
// certificate, cached in os.TempDir() across runs (shared with
// crl.BenchmarkCRL1M): x509.CreateRevocationList takes seconds and
// gigabytes for a million entries.
func bigCRL(b *testing.B, n int) ([]byte, *x509.Certificate) {
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

// tree is a certs/ and config/ pair with trust store "s".
type tree struct{ certs, config string }

func newTree(b *testing.B) tree {
	root := b.TempDir()
	t := tree{certs: filepath.Join(root, "certs"), config: filepath.Join(root, "config")}
	for _, d := range []string{"server", "client", "trust/s"} {
		if err := os.MkdirAll(filepath.Join(t.certs, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.MkdirAll(t.config, 0o755); err != nil {
		b.Fatal(err)
	}
	return t
}

func (t tree) write(b *testing.B, name string, data []byte) {
	b.Helper()
	if err := pki.WriteFileAtomic(filepath.Join(t.certs, "trust", "s", name), data, 0o644); err != nil {
		b.Fatal(err)
	}
}

func reportMB(b *testing.B, peak, live uint64) {
	b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
	b.ReportMetric(float64(live)/1e6, "kept-MB")
}

// BenchmarkServeModel1M: what serve keeps of a trust store with a
// 1M-serial CRL, and the heap peak while loading it. x509 is the model
// before issue #12 (TrustStore.CRLs held the parsed list, CRLPEM the bytes
// sent); summary is config.Load today (summary, PEM, parse cache and trust
// memory all included).
func BenchmarkServeModel1M(b *testing.B) {
	der, ca := bigCRL(b, serials)
	b.Run("x509", func(b *testing.B) {
		for b.Loop() {
			peak, live := heapprobe.Peak(func() any {
				rl, err := x509.ParseRevocationList(der)
				if err != nil {
					b.Fatal(err)
				}
				return []any{rl, pki.CRLPEM(rl.Raw)}
			})
			reportMB(b, peak, live)
		}
	})
	for _, form := range []string{"der", "pem"} {
		b.Run("summary-"+form, func(b *testing.B) {
			t := newTree(b)
			t.write(b, "ca.pem", pki.CertPEM(ca))
			if form == "pem" {
				t.write(b, "big.crl", pki.CRLPEM(der))
			} else {
				t.write(b, "big.crl", der)
			}
			serveModel(b, t)
		})
	}
}

// serveModel loads t with a fresh memory and reports what it keeps.
func serveModel(b *testing.B, t tree) {
	for b.Loop() {
		peak, live := heapprobe.Peak(func() any {
			mem, err := config.NewTrustMemory("", false)
			if err != nil {
				b.Fatal(err)
			}
			m, err := config.Loader{Trust: mem}.Load(t.certs, t.config)
			if err != nil || m.Trust["s"] == nil || m.Trust["s"].CRLs[0].Revoked != serials {
				b.Fatalf("load: %v %v", err, m.Problems)
			}
			return []any{m, mem}
		})
		reportMB(b, peak, live)
	}
}

// BenchmarkReloadOtherCA: a trust store holds CA A with a 1M-serial CRL
// and CA B with a small one; each iteration writes a new CRL of B and
// reloads. uncached parses every file again (as every load did before
// issue #12, with the streaming parser; x509-parse-1M is what re-parsing
// the big CRL alone cost with x509); cached re-parses b.crl only, and
// takes CA A's settled files by their identity, unread.
func BenchmarkReloadOtherCA(b *testing.B) {
	der, caA := bigCRL(b, serials)
	caB, err := pki.NewRootCA(pki.Options{CommonName: "Bench Other CA"})
	if err != nil {
		b.Fatal(err)
	}
	crlB := func(n int64) []byte {
		now := time.Now().Add(-time.Minute)
		d, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(n), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour)}, caB.Cert, caB.Key)
		if err != nil {
			b.Fatal(err)
		}
		return pki.CRLPEM(d)
	}
	run := func(b *testing.B, fresh bool) {
		t := newTree(b)
		t.write(b, "a.pem", pki.CertPEM(caA))
		t.write(b, "a.crl", der)
		t.write(b, "b.pem", pki.CertPEM(caB.Cert))
		t.write(b, "b.crl", crlB(1))
		// CA A's files were written long ago, as a big CRL usually was:
		// the cache may take them by their identity, unread.
		long := time.Now().Add(-time.Hour)
		for _, f := range []string{"a.pem", "a.crl"} {
			if err := os.Chtimes(filepath.Join(t.certs, "trust", "s", f), long, long); err != nil {
				b.Fatal(err)
			}
		}
		mem, err := config.NewTrustMemory("", false)
		if err != nil {
			b.Fatal(err)
		}
		ld := config.Loader{Trust: mem}
		if _, err := ld.Load(t.certs, t.config); err != nil {
			b.Fatal(err)
		}
		n := int64(2)
		for b.Loop() {
			b.StopTimer()
			t.write(b, "b.crl", crlB(n))
			n++
			if fresh {
				ld.Cache = config.NewParseCache()
			}
			b.StartTimer()
			m, err := ld.Load(t.certs, t.config)
			if err != nil || len(m.Trust["s"].CRLs) != 2 || m.Trust["s"].CRLs[1].Number.Int64() != n-1 {
				b.Fatalf("reload: %v %v", err, m.Problems)
			}
		}
	}
	b.Run("uncached", func(b *testing.B) { run(b, true) })
	b.Run("cached", func(b *testing.B) { run(b, false) })
	b.Run("x509-parse-1M", func(b *testing.B) {
		for b.Loop() {
			if _, err := x509.ParseRevocationList(der); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// oldIndex is the proxy's index before issue #12: x509 parses the CRL (a
// big.Int and an entry struct per serial), then each serial is packed in
// an open-addressing set (the same shape as today's serialSet), and the
// parsed list keeps the DER for its signature.
type oldIndex struct {
	rl    *x509.RevocationList
	blob  []byte
	slots []uint32
}

func buildOldIndex(der []byte) (*oldIndex, error) {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, err
	}
	seed := maphash.MakeSeed()
	size := 1
	for size < 2*len(rl.RevokedCertificateEntries) {
		size <<= 1
	}
	ix := &oldIndex{rl: rl, slots: make([]uint32, size)}
	var buf [64]byte
	for _, e := range rl.RevokedCertificateEntries {
		key := append(buf[:0], 0)
		key = append(key, e.SerialNumber.Bytes()...)
		for i := int(maphash.Bytes(seed, key)) & (size - 1); ; i = (i + 1) & (size - 1) {
			if ix.slots[i] == 0 {
				ix.slots[i] = uint32(len(ix.blob)) + 1
				ix.blob = binary.AppendUvarint(ix.blob, uint64(len(key)))
				ix.blob = append(ix.blob, key...)
				break
			}
		}
	}
	rl.RevokedCertificateEntries = nil
	//lint:ignore SA1019 drop the deprecated mirror of the entries too, as the proxy did
	rl.RevokedCertificates = nil
	return ix, nil
}

// BenchmarkProxyIndex1M: the proxy builds the serial index of a Secret
// carrying a 1M-serial CRL (PEM, as xDS delivers it). The PEM itself is
// the Secret's and not counted.
func BenchmarkProxyIndex1M(b *testing.B) {
	der, ca := bigCRL(b, serials)
	pemData := pki.CRLPEM(der)
	caPEM := pki.CertPEM(ca)
	b.Run("x509", func(b *testing.B) {
		for b.Loop() {
			peak, live := heapprobe.Peak(func() any {
				d := make([]byte, len(der)) // the PEM decode
				copy(d, der)
				ix, err := buildOldIndex(d)
				if err != nil {
					b.Fatal(err)
				}
				return ix
			})
			reportMB(b, peak, live)
		}
	})
	b.Run("streaming", func(b *testing.B) {
		for b.Loop() {
			peak, live := heapprobe.Peak(func() any {
				s, err := mtls.ParseCRLs(pemData)
				if err != nil || s.Info()[0].Revoked != serials {
					b.Fatal(err)
				}
				// The verifier admits the CRL against its CA and drops its
				// signature material, as a listener's does.
				vc := &tlsv3.CertificateValidationContext{
					TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: caPEM}},
					Crl:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: pemData}},
				}
				v, err := mtls.NewVerifier(vc, true, mtls.Options{CRLs: s})
				if err != nil {
					b.Fatal(err)
				}
				return []any{s, v}
			})
			reportMB(b, peak, live)
		}
	})
}
