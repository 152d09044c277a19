package proxy

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter records each Write it gets.
type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

func (w *countingWriter) state() (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String(), w.writes
}

// TestLogBufferBatches: many lines from concurrent writers reach the file
// whole, in few writes, and all of them by Close.
func TestLogBufferBatches(t *testing.T) {
	var w countingWriter
	lb := NewLogBuffer(&w, time.Hour) // only size and Close flush here
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				fmt.Fprintf(lb, "{\"g\":%d,\"i\":%d,\"pad\":%q}\n", g, i, strings.Repeat("x", 50))
			}
		}()
	}
	wg.Wait()
	if err := lb.Close(); err != nil {
		t.Fatal(err)
	}
	out, writes := w.state()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4000 {
		t.Fatalf("%d lines reached the writer, want 4000", len(lines))
	}
	next := map[string]int{}
	for _, l := range lines {
		var g, i int
		if _, err := fmt.Sscanf(l, "{\"g\":%d,\"i\":%d,", &g, &i); err != nil {
			t.Fatalf("line split or mixed: %q", l)
		}
		k := fmt.Sprint(g)
		if i != next[k] {
			t.Fatalf("writer %d: line %d after %d (reordered)", g, i, next[k]-1)
		}
		next[k]++
	}
	if writes > 10 {
		t.Errorf("%d writes for %d bytes, want batches of 64 KiB", writes, len(out))
	}
}

// TestLogBufferInterval: a line is written within the interval without
// Close; an interval of zero writes each line at once.
func TestLogBufferInterval(t *testing.T) {
	var w countingWriter
	lb := NewLogBuffer(&w, 10*time.Millisecond)
	defer lb.Close()
	fmt.Fprintln(lb, "one")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if out, _ := w.state(); out == "one\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the line was not flushed by the interval")
		}
		time.Sleep(5 * time.Millisecond) // polling the writer: no event to wait on
	}
	var d countingWriter
	direct := NewLogBuffer(&d, 0)
	fmt.Fprintln(direct, "a")
	if out, n := d.state(); out != "a\n" || n != 1 {
		t.Errorf("interval 0: %q in %d writes, want the line at once", out, n)
	}
	if err := direct.Close(); err != nil {
		t.Fatal(err)
	}
}
