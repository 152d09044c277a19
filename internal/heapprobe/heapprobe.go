// Package heapprobe measures what a piece of code does to the Go heap, for
// the memory benchmarks (crl, bench/crlmem): the transient peak and what
// stays live.
package heapprobe

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

// Peak samples the heap's object bytes while fn runs and returns the peak
// above the level before it, and the live heap fn's result keeps.
func Peak(fn func() any) (peak, live uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	var top uint64
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			if v := read(); v > top {
				top = v
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	result := fn()
	close(done)
	wg.Wait()
	if v := read(); v > top {
		top = v
	}
	runtime.GC()
	if v := read(); v > base {
		live = v - base
	}
	runtime.KeepAlive(result)
	return top - base, live
}
