package testutil

import (
	"testing"
	"time"
)

// A write made before Wrote was first called still leaves a tick, so a
// test that checks String and then waits never misses it.
func TestSyncBufferTicksForEarlierWrites(t *testing.T) {
	var b SyncBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = b.Write([]byte("ready\n"))
	}()
	<-done
	select {
	case <-b.Wrote():
	case <-time.After(10 * time.Second):
		t.Fatal("no tick for a write made before Wrote was called")
	}
	if got := b.String(); got != "ready\n" {
		t.Fatalf("String() = %q", got)
	}
	select {
	case <-b.Wrote():
		t.Fatal("a second tick without a second write")
	default:
	}
}
