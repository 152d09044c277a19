package proxy

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// requestBody is the client's request body as the upstream transport reads
// it. It counts the bytes for bytes_received (the transport may still be
// reading when the request is logged), caps each read at the listener's
// copy buffer size (per_connection_buffer_limit_bytes, see
// bufferLimitChunk), and tags its read errors: a malformed chunked body, a
// body shorter than its Content-Length or a client that resets mid-body
// is the client's protocol error, answered 400 and never counted against
// the upstream host by outlier detection.
type requestBody struct {
	io.ReadCloser
	max    int
	n      atomic.Int64
	failed atomic.Bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.max > 0 && len(p) > b.max {
		p = p[:b.max]
	}
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	if err != nil && err != io.EOF {
		b.failed.Store(true)
		return n, &clientBodyError{err}
	}
	return n, err
}

// clientBodyError is a failed read of the client's request body.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string {
	return "reading the client's request body: " + e.err.Error()
}
func (e *clientBodyError) Unwrap() error { return e.err }

// clientFault reports whether err, or any read of body, is the client's
// failure to send its request body. The flag covers transports that
// replace the read error by a write error of their own.
func clientFault(body *requestBody, err error) bool {
	var cbe *clientBodyError
	return errors.As(err, &cbe) || (body != nil && body.failed.Load())
}

// copyBuffers is a ReverseProxy BufferPool of fixed-size buffers: the
// response body is copied through one of them.
type copyBuffers struct {
	size int
	pool sync.Pool
}

func newCopyBuffers(size int) *copyBuffers {
	c := &copyBuffers{size: size}
	c.pool.New = func() any { b := make([]byte, size); return &b }
	return c
}

func (c *copyBuffers) Get() []byte { return *c.pool.Get().(*[]byte) }

func (c *copyBuffers) Put(b []byte) {
	if cap(b) == c.size {
		b = b[:c.size]
		c.pool.Put(&b)
	}
}
