package proxy

import (
	"slices"
	"sync"
	"time"
)

// handshakeMinutes is how far back the handshake history goes: one hour,
// one bucket per minute.
const handshakeMinutes = 60

// HandshakeOK is the reason under which successful handshakes are counted.
const HandshakeOK = "ok"

// HandshakeHistory is the handshakes of the last hour per minute and per
// result: "ok", or the failure reason of the connection log (no_certificate,
// revoked, untrusted...). It answers "why was this client refused?" at a
// glance, where the Prometheus counter needs a query.
type HandshakeHistory struct {
	// Minutes holds one entry per minute, oldest first, the last being the
	// current (partial) minute; always handshakeMinutes entries.
	Minutes []HandshakeMinute `json:"minutes"`
	// Reasons lists every reason seen in the hour, "ok" first, then by count.
	Reasons []string `json:"reasons"`
	// Totals sums each reason over the hour.
	Totals map[string]uint64 `json:"totals"`
}

// HandshakeMinute is one minute's counts by reason.
type HandshakeMinute struct {
	Start  time.Time         `json:"start"`
	Counts map[string]uint64 `json:"counts,omitempty"`
}

// handshakeRing is a per-minute ring buffer of handshake results. A bucket
// is reused when its minute comes round again an hour later, so memory is
// fixed whatever the traffic, and recording is one short critical section.
type handshakeRing struct {
	mu      sync.Mutex
	buckets [handshakeMinutes]ringBucket
}

type ringBucket struct {
	minute int64 // Unix minutes; 0 for never used
	counts map[string]uint64
}

func unixMinute(t time.Time) int64 { return t.Unix() / 60 }

// record counts one handshake with result reason ("" counts as ok) at now.
func (r *handshakeRing) record(reason string, now time.Time) {
	if reason == "" {
		reason = HandshakeOK
	}
	m := unixMinute(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	b := &r.buckets[m%handshakeMinutes]
	if b.minute != m {
		b.minute = m
		clear(b.counts)
	}
	if b.counts == nil {
		b.counts = map[string]uint64{}
	}
	b.counts[reason]++
}

// history returns the last hour as of now.
func (r *handshakeRing) history(now time.Time) *HandshakeHistory {
	h := &HandshakeHistory{Minutes: make([]HandshakeMinute, handshakeMinutes), Totals: map[string]uint64{}}
	cur := unixMinute(now)
	r.mu.Lock()
	for i := range handshakeMinutes {
		m := cur - handshakeMinutes + 1 + int64(i)
		h.Minutes[i].Start = time.Unix(m*60, 0).UTC()
		b := &r.buckets[((m%handshakeMinutes)+handshakeMinutes)%handshakeMinutes]
		if b.minute != m || len(b.counts) == 0 {
			continue
		}
		h.Minutes[i].Counts = make(map[string]uint64, len(b.counts))
		for k, v := range b.counts {
			h.Minutes[i].Counts[k] = v
			h.Totals[k] += v
		}
	}
	r.mu.Unlock()
	for k := range h.Totals {
		h.Reasons = append(h.Reasons, k)
	}
	slices.SortFunc(h.Reasons, func(a, b string) int {
		switch {
		case a == HandshakeOK:
			return -1
		case b == HandshakeOK:
			return 1
		case h.Totals[a] != h.Totals[b]:
			if h.Totals[a] > h.Totals[b] {
				return -1
			}
			return 1
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	})
	if h.Reasons == nil {
		h.Reasons = []string{}
	}
	return h
}
