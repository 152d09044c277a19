package proxy

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// statusWriter records the status and size of a response for the request
// log, and applies the stream idle timeout to writes.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	idle   time.Duration
	detail string // why the proxy answered itself
	armed  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.idle > 0 {
		// A write that makes no progress for stream_idle_timeout ends the
		// stream, as Envoy's stream idle timer does.
		_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.idle))
		w.armed = true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clearDeadline lifts the write deadline so a keep-alive connection's next
// response is not bound by this one's idle timer.
func (w *statusWriter) clearDeadline() {
	if w.armed {
		_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Time{})
	}
}

func (w *statusWriter) fail(code int, detail string) {
	w.detail = detail
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, detail)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// idleBody applies the stream idle timeout to request body reads.
type idleBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	idle  time.Duration
	armed bool
	// timedOut is set when a read hit the idle deadline. net/http then
	// cancels the request context as if the client had gone, so the error
	// handler needs this to answer Envoy's 408 instead.
	timedOut *atomic.Bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	b.armed = true
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		b.timedOut.Store(true)
	}
	return n, err
}

func (b *idleBody) Close() error {
	if b.armed {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return b.ReadCloser.Close()
}
