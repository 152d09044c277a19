package proxy

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"testing"
	"time"
)

// TestRequestLineMatchesSlog: the proxy's own encoding of a request line
// is byte for byte what slog's JSONHandler writes for the same attributes
// (the time value aside, taken at a different instant), escaping and
// optional keys included.
func TestRequestLineMatchesSlog(t *testing.T) {
	start := time.Date(2026, 12, 3, 17, 4, 5, 678_000_000, time.UTC)
	lines := []requestLine{
		{start: start, listener: "public", client: "127.0.0.1:5555", method: "GET", authority: "shop.example", path: "/orders?id=7",
			proto: "HTTP/1.1", status: 200, cluster: "orders", upstream: "127.0.0.1:9001", duration: 1234 * time.Microsecond,
			received: 0, sent: 512, peer: true, peerSubject: "CN=alice,O=Ex\"ample", peerSerial: "0a1b"},
		{start: start, listener: "l", client: "[::1]:1", method: "POST", authority: "a<b>&c", path: "/\x00\x01\t\n\r\\\"\u2028\u2029é\xff",
			proto: "HTTP/2", status: 503, duration: 0, received: 1 << 40, sent: -1, detail: "no healthy upstream",
			originalPath: "/a/../b", upstreamError: "dial tcp: connection refused"},
		{start: start, status: 404, duration: 7 * time.Second},
	}
	stamp := regexp.MustCompile(`^\{"time":"[^"]*"`)
	for i, l := range lines {
		var fast, slow bytes.Buffer
		writeRequestLine(&fast, time.Now(), &l)
		slog.New(slog.NewJSONHandler(&slow, nil)).LogAttrs(context.Background(), slog.LevelInfo, "request", l.attrs()...)
		f, s := stamp.ReplaceAllString(fast.String(), `{"time":"T"`), stamp.ReplaceAllString(slow.String(), `{"time":"T"`)
		if f != s {
			t.Errorf("line %d:\nproxy %s\nslog  %s", i, f, s)
		}
		if !stamp.MatchString(fast.String()) {
			t.Errorf("line %d has no time: %s", i, fast.String())
		}
	}
	// The time is formatted as slog formats it (RFC 3339, nanoseconds).
	var fast, slow bytes.Buffer
	now := time.Now()
	writeRequestLine(&fast, now, &lines[2])
	h := slog.NewJSONHandler(&slow, nil)
	r := slog.NewRecord(now, slog.LevelInfo, "request", 0)
	r.AddAttrs(lines[2].attrs()...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if fast.String() != slow.String() {
		t.Errorf("same instant:\nproxy %s\nslog  %s", fast.String(), slow.String())
	}
}
