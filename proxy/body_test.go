package proxy

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestBufferLimitBoundsCopies: per_connection_buffer_limit_bytes sizes the
// buffers a body crosses the proxy in: reads of the request body handed to
// the upstream transport, the response copy buffer, and the upstream
// connection's read and write buffers.
func TestBufferLimitBoundsCopies(t *testing.T) {
	for limit, want := range map[uint32]int{0: maxCopyBuffer, 1000: 1000, 32768: 32768, 1 << 20: maxCopyBuffer} {
		if got := bufferLimitChunk(wrapperspb.UInt32(limit)); got != want {
			t.Errorf("limit %d: copy buffer %d, want %d", limit, got, want)
		}
	}
	if got := bufferLimitChunk(nil); got != maxCopyBuffer {
		t.Errorf("no limit: copy buffer %d, want %d", got, maxCopyBuffer)
	}
	b := &requestBody{ReadCloser: io.NopCloser(bytes.NewReader(make([]byte, 10000))), max: 1000}
	buf := make([]byte, 32<<10)
	for {
		n, err := b.Read(buf)
		if n > 1000 {
			t.Fatalf("one read handed %d bytes to the transport, limit 1000", n)
		}
		if err == io.EOF {
			break
		}
	}
	if b.n.Load() != 10000 || b.failed.Load() {
		t.Errorf("counted %d bytes, failed %t; want 10000, false", b.n.Load(), b.failed.Load())
	}
	if got := len(newCopyBuffers(1000).Get()); got != 1000 {
		t.Errorf("response copy buffer %d bytes, want 1000", got)
	}
	for limit, want := range map[int]int{0: 4096, 1000: 1000, 32768: 4096} {
		tr := newTransport(&clusterSpec{network: "tcp", bufferLimit: limit}, nil)
		if tr.ReadBufferSize != want || tr.WriteBufferSize != want {
			t.Errorf("cluster limit %d: upstream buffers %d/%d, want %d", limit, tr.ReadBufferSize, tr.WriteBufferSize, want)
		}
	}
}

// TestRequestBodyErrorsAreTagged: a failed read of the client's body is
// the client's fault, however the transport reports it.
func TestRequestBodyErrorsAreTagged(t *testing.T) {
	broken := errors.New("invalid byte in chunk length")
	b := &requestBody{ReadCloser: io.NopCloser(io.MultiReader(bytes.NewReader([]byte("ok")), iotest.ErrReader(broken)))}
	_, err := io.ReadAll(b)
	if !errors.Is(err, broken) || !clientFault(b, err) || !clientFault(b, errors.New("write: broken pipe")) {
		t.Fatalf("read error %v not tagged as the client's", err)
	}
	if clientFault(&requestBody{ReadCloser: io.NopCloser(bytes.NewReader(nil))}, errors.New("dial tcp: refused")) {
		t.Fatal("an upstream error was blamed on the client")
	}
}
