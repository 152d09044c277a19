package controlplane

import (
	"math"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/certplane/certplane/config"
)

// largeTrustBytes is the size of PEM trust material above which a push
// is followed by returning its garbage to the OS, and the heap is paced
// (pacer). A push of a store with a 1,000,000-serial CRL leaves the
// replaced 46 MB bundle behind; the runtime's background scavenger would
// hand that back over minutes, so the process's RSS would sit far above
// its live heap.
const largeTrustBytes = 8 << 20

// releaseDelay is how long after such a push the memory is released: long
// enough for the responses to be sent, so the full GC of releaseMemory
// never delays a push.
const releaseDelay = 2 * time.Second

// trustBytes is the PEM size of every trust store of m.
func trustBytes(m *config.Model) int {
	n := 0
	for _, ts := range m.Trust {
		n += len(ts.CAPEM) + ts.CRLPEM.Len()
	}
	return n
}

// releaseMemory runs a GC and returns freed memory to the OS.
func releaseMemory() { debug.FreeOSMemory() }

// collecting is set while collect's GC runs.
var collecting atomic.Bool

// collect starts a GC, off the caller's goroutine, right after a push that
// replaced large trust material: the replaced bundle is garbage from the
// moment the snapshot is swapped (the responses in flight reference the
// new one), and collecting it now lets the next push reuse its pages.
// Left to the GC's pace, it is collected only when the next push's copy
// pushes the heap over its goal: three bundles at once instead of two.
// Marking is cheap here: the bundles are pointer-free. A second call while
// one runs is dropped.
func collect() {
	if !collecting.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer collecting.Store(false)
		runtime.GC()
	}()
}

// pacer sets a soft memory limit (debug.SetMemoryLimit) while the trust
// material is large: what the process holds after a full GC, plus the
// copies of the trust material one push makes, plus some slack. With
// GOGC alone the heap goal is twice the live heap measured mid-push (the
// old and the new CRL bundle both alive), so each push's 46 MB of garbage
// piles up to about 190 MB before a GC; under the limit the GC runs as the
// next copy is made. Outside pushes the limit is never approached, so the
// GC keeps GOGC's pace. The limit is set again after every release (a
// full GC, so the footprint is exact) and raised at once when the trust
// material grows.
type pacer struct {
	copies  int  // copies of the trust material one push adds; 0: off
	enabled bool // false when the operator set GOMEMLIMIT
	trust   int  // trust bytes the limit was sized for; 0: no limit set
	base    int64
}

// paceSlack is the room above footprint + copies: the rest of a push's
// allocations (translation, gRPC buffers) and ordinary churn. With a
// quarter of the footprint (min 32 MiB) building the next bundle ran into
// GC assists: a new CRL's push p50 rose from ~180 to ~280 ms at 1M serials;
// half (min 64 MiB) brings it back to 171-194 ms with the same 169 MB peak
// (cpbench -part push, 3 runs each).
func paceSlack(footprint int64) int64 { return max(64<<20, footprint/2) }

// newPacer paces a process whose push copies the trust material copies
// times; 0 disables it.
func newPacer(copies int) *pacer {
	return &pacer{copies: copies, enabled: copies > 0 && debug.SetMemoryLimit(-1) == math.MaxInt64}
}

// reloaded adjusts the limit to a reload's trust material, before the push
// that follows it allocates.
func (p *pacer) reloaded(trust int) {
	if !p.enabled {
		return
	}
	switch {
	case trust <= largeTrustBytes:
		if p.trust != 0 {
			p.trust = 0
			debug.SetMemoryLimit(math.MaxInt64)
		}
	case p.trust != 0 && trust > p.trust:
		// Grown: what is live grows by the difference, and a push copies
		// the new size.
		p.base += int64(trust - p.trust)
		p.trust = trust
		p.set()
	}
}

// released sizes the limit after a full GC (releaseMemory).
func (p *pacer) released(trust int) {
	if !p.enabled || trust <= largeTrustBytes {
		return
	}
	p.base = footprint()
	p.trust = trust
	p.set()
}

func (p *pacer) set() {
	debug.SetMemoryLimit(p.base + int64(p.copies)*int64(p.trust) + paceSlack(p.base))
}

// footprint is the memory the Go runtime holds from the OS: what the
// memory limit counts.
func footprint() int64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	rtmetrics.Read(s)
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}
