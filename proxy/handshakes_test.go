package proxy

import (
	"reflect"
	"testing"
	"time"
)

// TestHandshakeRing: per-minute counts by reason over the last hour; a
// bucket an hour old is reused, not added to.
func TestHandshakeRing(t *testing.T) {
	var r handshakeRing
	t0 := time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)
	r.record("", t0)
	r.record("", t0)
	r.record("revoked", t0.Add(10*time.Second))
	r.record("no_certificate", t0.Add(5*time.Minute))
	r.record("revoked", t0.Add(5*time.Minute))
	r.record("revoked", t0.Add(5*time.Minute))

	h := r.history(t0.Add(5 * time.Minute))
	if len(h.Minutes) != 60 {
		t.Fatalf("%d minutes, want 60", len(h.Minutes))
	}
	last := h.Minutes[59]
	if !last.Start.Equal(time.Date(2026, 3, 1, 10, 5, 0, 0, time.UTC)) {
		t.Errorf("last minute starts %s", last.Start)
	}
	if want := map[string]uint64{"no_certificate": 1, "revoked": 2}; !reflect.DeepEqual(last.Counts, want) {
		t.Errorf("current minute = %v, want %v", last.Counts, want)
	}
	if want := map[string]uint64{"ok": 2, "revoked": 1}; !reflect.DeepEqual(h.Minutes[54].Counts, want) {
		t.Errorf("minute 10:00 = %v, want %v", h.Minutes[54].Counts, want)
	}
	if want := []string{"ok", "revoked", "no_certificate"}; !reflect.DeepEqual(h.Reasons, want) {
		t.Errorf("reasons = %v, want %v", h.Reasons, want)
	}
	if want := map[string]uint64{"ok": 2, "revoked": 3, "no_certificate": 1}; !reflect.DeepEqual(h.Totals, want) {
		t.Errorf("totals = %v, want %v", h.Totals, want)
	}

	// An hour later 10:00 has left the window; 11:00 reuses its bucket.
	r.record("", t0.Add(time.Hour))
	h = r.history(t0.Add(time.Hour))
	if want := map[string]uint64{"ok": 1}; !reflect.DeepEqual(h.Minutes[59].Counts, want) {
		t.Errorf("11:00 = %v, want %v", h.Minutes[59].Counts, want)
	}
	if want := map[string]uint64{"ok": 1, "revoked": 2, "no_certificate": 1}; !reflect.DeepEqual(h.Totals, want) {
		t.Errorf("totals an hour later = %v, want %v", h.Totals, want)
	}
	// Two hours of silence: nothing left.
	h = r.history(t0.Add(3 * time.Hour))
	if len(h.Totals) != 0 || len(h.Reasons) != 0 {
		t.Errorf("after silence: totals %v reasons %v", h.Totals, h.Reasons)
	}
}
