package proxy

import (
	"math/big"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"
)

// TestCRLHeapGrowth measures what a large CRL costs the proxy's heap: the
// guide's proxy with a CRL of N serials against one of a single serial,
// HeapInuse after GC once the listener serves. It is a measurement, not a
// gate: set CERTPLANE_CRL_HEAP_SERIALS=200000 to run it (building the CRL
// takes seconds). The ADS server in the same process holds its own copy of
// the Secret's PEM in both runs. CERTPLANE_CRL_HEAP_PROFILE=file writes a
// heap profile of the large run.
func TestCRLHeapGrowth(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CERTPLANE_CRL_HEAP_SERIALS"))
	if n <= 0 {
		t.Skip("measurement only: set CERTPLANE_CRL_HEAP_SERIALS=200000 to run it")
	}
	heap := func(serials int) (uint64, int) {
		var pemLen int
		e := newGuideEnv(t, nil)
		at := time.Now().Add(-time.Hour)
		for i := range serials - 1 {
			e.clientCA.RevokeSerial(big.NewInt(int64(1_000_000_000+i)), at)
		}
		crl := e.clientCA.CRLPEM()
		pemLen = len(crl)
		e.publish(t, crl)
		waitUpdated(t, e.px.Proxy, "the new CRL to be served", func() bool {
			for _, ts := range e.px.Status().TrustStores {
				for _, c := range ts.CRLs {
					if c.Revoked >= serials {
						return true
					}
				}
			}
			return false
		})
		crl = nil
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if f := os.Getenv("CERTPLANE_CRL_HEAP_PROFILE"); f != "" && serials > 1 {
			out, err := os.Create(f)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			if err := pprof.WriteHeapProfile(out); err != nil {
				t.Fatal(err)
			}
		}
		return ms.HeapInuse, pemLen
	}
	base, _ := heap(1)
	big, pemLen := heap(n)
	t.Logf("CRL of %d serials (%d bytes PEM): HeapInuse %.1f MB vs %.1f MB with 1 serial: +%.1f MB",
		n, pemLen, float64(big)/1e6, float64(base)/1e6, (float64(big)-float64(base))/1e6)
}
