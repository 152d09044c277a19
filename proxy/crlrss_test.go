package proxy

import (
	"bufio"
	"bytes"
	"math/big"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"testing"
	"time"
)

// TestCRLRSS measures the process's resident memory right after the proxy
// applies a CRL of N serials, with the runtime's view of where it goes (heap
// objects, free heap still resident, heap returned to the OS). It is a
// measurement, not a gate: set CERTPLANE_CRL_RSS_SERIALS=1000000 to run it.
// The ADS server in the same process marshals the Secret too, so the figure
// is an upper bound for a proxy alone; cpbench's crl part measures
// `certplane proxy --xds` in its own process.
func TestCRLRSS(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CERTPLANE_CRL_RSS_SERIALS"))
	if n <= 0 {
		t.Skip("measurement only: set CERTPLANE_CRL_RSS_SERIALS=1000000 to run it")
	}
	e := newGuideEnv(t, nil)
	at := time.Now().Add(-time.Hour)
	for i := range n - 1 {
		e.clientCA.RevokeSerial(big.NewInt(int64(1_000_000_000+i)), at)
	}
	crl := e.clientCA.CRLPEM()
	pemLen := len(crl)
	// Start from a clean slate: the CRL's signing garbage is not the proxy's.
	debug.FreeOSMemory()
	before := rssKB(t)
	e.publish(t, crl)
	crl = nil
	waitUpdated(t, e.px.Proxy, "the new CRL to be served", func() bool {
		for _, ts := range e.px.Status().TrustStores {
			for _, c := range ts.CRLs {
				if c.Revoked >= n {
					return true
				}
			}
		}
		return false
	})
	// The status shows the CRL as soon as the state is stored; the update
	// holds the proxy's lock until it has returned its garbage.
	e.px.mu.Lock()
	//lint:ignore SA2001 the empty critical section waits for Update to end
	e.px.mu.Unlock()
	after := rssKB(t)
	samples := []rtmetrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/total:bytes"},
	}
	rtmetrics.Read(samples)
	mb := func(i int) float64 { return float64(samples[i].Value.Uint64()) / (1 << 20) }
	defer func() {
		// What of the heap is live: the test's CA keeps its 1M revoked
		// serials and the in-process ADS server its snapshot.
		runtime.GC()
		rtmetrics.Read(samples[:1])
		t.Logf("heap objects after a GC: %.0f MB", mb(0))
	}()
	t.Logf("CRL of %d serials (%.1f MB PEM): VmRSS %.0f MB before the update, %.0f MB once served; "+
		"heap objects %.0f MB, heap free %.0f MB, heap unused %.0f MB, released to the OS %.0f MB, runtime total %.0f MB",
		n, float64(pemLen)/(1<<20), float64(before)/1024, float64(after)/1024, mb(0), mb(1), mb(2), mb(3), mb(4))
}

// rssKB reads this process's VmRSS from /proc/self/status.
func rssKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) > 0 {
				kb, err := strconv.Atoi(string(f[0]))
				if err == nil {
					return kb
				}
			}
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
