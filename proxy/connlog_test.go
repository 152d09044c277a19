package proxy

import (
	"testing"
	"time"
)

func TestFailureLimiter(t *testing.T) {
	l := newFailureLimiter(10 * time.Second)
	t0 := time.Unix(1000, 0)
	if ok, n := l.allow("l", "revoked", "10.0.0.1", t0); !ok || n != 0 {
		t.Fatalf("first failure: %v %d", ok, n)
	}
	for i := 1; i <= 5; i++ {
		if ok, _ := l.allow("l", "revoked", "10.0.0.1", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("repeat %d logged; want suppressed", i)
		}
	}
	if ok, _ := l.allow("l", "unknown_ca", "10.0.0.1", t0.Add(time.Second)); !ok {
		t.Fatal("another reason was suppressed")
	}
	if ok, n := l.allow("l", "revoked", "10.0.0.1", t0.Add(11*time.Second)); !ok || n != 5 {
		t.Fatalf("after the window: logged=%v suppressed=%d, want true 5", ok, n)
	}
	l.allow("l", "revoked", "10.0.0.1", t0.Add(12*time.Second))
	var got int
	l.sweep(t0.Add(30*time.Second), func(k limitKey, n int) {
		if k.reason == "revoked" {
			got = n
		}
	})
	if got != 1 {
		t.Fatalf("sweep reported %d suppressed, want 1", got)
	}
}
