package main

import (
	"os"
	"testing"
	"time"
)

func TestQuantiles(t *testing.T) {
	ds := make([]time.Duration, 200)
	for i := range ds {
		ds[i] = time.Duration(200-i) * time.Millisecond // 200ms .. 1ms, unsorted
	}
	p50, p99 := quantiles(ds)
	if p50 != 100 || p99 != 198 {
		t.Fatalf("quantiles = %v, %v; want 100, 198 (nearest rank)", p50, p99)
	}
	if p50, p99 := quantiles(nil); p50 != 0 || p99 != 0 {
		t.Fatalf("quantiles(nil) = %v, %v", p50, p99)
	}
}

func TestProcReadsSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	if rss := statusKB(os.Getpid(), "VmRSS"); rss <= 0 {
		t.Fatalf("VmRSS of this process = %d kB", rss)
	}
	if statusKB(os.Getpid(), "NoSuchKey") != 0 {
		t.Fatal("an absent key must read as 0")
	}
	if cpuTicks(os.Getpid()) < 0 {
		t.Fatal("negative CPU ticks")
	}
}
