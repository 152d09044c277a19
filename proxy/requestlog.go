package proxy

import (
	"encoding/json"
	"io"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// requestLine is one request-log line's values, in the order they are
// written. The keys are those of Envoy's HTTP access log (connlog.go).
type requestLine struct {
	start                                            time.Time
	listener, client, method, authority, path, proto string
	status                                           int
	cluster, upstream                                string
	duration                                         time.Duration
	received, sent                                   int64
	detail, originalPath, upstreamError              string
	peer                                             bool
	peerSubject, peerSerial                          string
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeRequestLine encodes l as the line slog's JSONHandler (default
// options) writes for the same record, byte for byte, and writes it to w
// in one Write. On keep-alive traffic slog's per-attribute work was most of
// the log's CPU (issue 14); TestRequestLineMatchesSlog holds the two
// encodings equal.
func writeRequestLine(w io.Writer, now time.Time, l *requestLine) {
	bp := lineBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","event":"request"`...)
	str := func(k, v string) {
		b = append(b, `,"`...)
		b = append(b, k...)
		b = append(b, `":"`...)
		b = appendJSONString(b, v)
		b = append(b, '"')
	}
	num := func(k string, v int64) {
		b = append(b, `,"`...)
		b = append(b, k...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, v, 10)
	}
	str(keyStartTime, envoyTime(l.start))
	str("listener", l.listener)
	str("client", l.client)
	str("method", l.method)
	str("authority", l.authority)
	str("path", l.path)
	str("protocol", l.proto)
	num("status", int64(l.status))
	str("upstream_cluster", l.cluster)
	str("upstream_host", l.upstream)
	b = append(b, `,"duration_ms":`...)
	b = appendJSONFloat(b, float64(l.duration.Microseconds())/1000)
	num("bytes_received", l.received)
	num("bytes_sent", l.sent)
	if l.detail != "" {
		str("detail", l.detail)
	}
	if l.originalPath != "" {
		str("original_path", l.originalPath)
	}
	if l.upstreamError != "" {
		str("upstream_error", l.upstreamError)
	}
	if l.peer {
		str("peer_subject", l.peerSubject)
		str("peer_serial", l.peerSerial)
	}
	b = append(b, "}\n"...)
	_, _ = w.Write(b)
	if cap(b) <= 16<<10 {
		*bp = b
		lineBufs.Put(bp)
	}
}

// appendJSONFloat writes f as encoding/json does (slog's JSONHandler calls
// it for floats).
func appendJSONFloat(b []byte, f float64) []byte {
	if a := math.Abs(f); a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	out, err := json.Marshal(f)
	if err != nil { // NaN, Inf: never a duration
		return append(b, '0')
	}
	return append(b, out...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString escapes s as slog's JSONHandler does: ", \ and control
// characters escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped,
// HTML characters left alone.
func appendJSONString(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, '\\')
			switch c {
			case '\\', '"':
				b = append(b, c)
			case '\n':
				b = append(b, 'n')
			case '\r':
				b = append(b, 'r')
			case '\t':
				b = append(b, 't')
			default:
				b = append(b, 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
