package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawUpstream is a loopback HTTP/1.1 server written by hand, so that a
// test controls every byte and every close. handle gets each request head
// read from a connection and writes the answer; it returns false to close
// the connection.
type rawUpstream struct {
	ln      net.Listener
	accepts atomic.Int32
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func startRawUpstream(t *testing.T, handle func(c net.Conn, req *http.Request) bool) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepts.Add(1)
			u.mu.Lock()
			u.conns = append(u.conns, c)
			u.mu.Unlock()
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if !handle(c, req) {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		u.closeConns()
		u.wg.Wait()
	})
	return u
}

// closeConns closes every accepted connection (an upstream restart).
func (u *rawUpstream) closeConns() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, c := range u.conns {
		c.Close()
	}
	u.conns = nil
}

func rawOK(body string) func(net.Conn, *http.Request) bool {
	return func(c net.Conn, _ *http.Request) bool {
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
		return err == nil
	}
}

func testDirect(t *testing.T) (*upstreamTransport, *directTransport) {
	t.Helper()
	ut := newTransport(&clusterSpec{connectTimeout: 5 * time.Second, network: "tcp"}, nil)
	if ut.direct == nil {
		t.Fatal("a plaintext cluster has no direct transport")
	}
	t.Cleanup(ut.CloseIdleConnections)
	return ut, ut.direct
}

func directGet(t *testing.T, rt http.RoundTripper, addr string) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// TestDirectTransportReusesConnections: keep-alive requests share one
// upstream connection, and the path is the direct one.
func TestDirectTransportReusesConnections(t *testing.T) {
	up := startRawUpstream(t, rawOK("hello"))
	ut, _ := testDirect(t)
	for i := range 5 {
		req, _ := http.NewRequest("GET", "http://"+up.ln.Addr().String()+"/", nil)
		if !directEligible(req) {
			t.Fatal("a GET without body is not eligible for the direct path")
		}
		_, body, err := directGet(t, ut, up.ln.Addr().String())
		if err != nil || body != "hello" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}
	if n := up.accepts.Load(); n != 1 {
		t.Errorf("5 sequential requests used %d upstream connections, want 1", n)
	}
	if n := ut.inflight.Load(); n != 0 {
		t.Errorf("in flight after every body closed: %d", n)
	}
}

// TestDirectTransportRetriesClosedIdleConnection: the upstream closed its
// idle connection (a restart); the GET goes again on a new connection
// instead of failing, as net/http's Transport does.
func TestDirectTransportRetriesClosedIdleConnection(t *testing.T) {
	up := startRawUpstream(t, rawOK("a"))
	_, dt := testDirect(t)
	addr := up.ln.Addr().String()
	if _, _, err := directGet(t, dt, addr); err != nil {
		t.Fatal(err)
	}
	up.closeConns()
	_, body, err := directGet(t, dt, addr)
	if err != nil || body != "a" {
		t.Fatalf("after the upstream closed the idle connection: %q, %v", body, err)
	}
	if n := up.accepts.Load(); n != 2 {
		t.Errorf("upstream connections: %d, want 2", n)
	}
}

// TestDirectTransportConnectionClose: a response with Connection: close,
// or one whose body is cut short by the client, does not go back to the
// pool.
func TestDirectTransportConnectionClose(t *testing.T) {
	up := startRawUpstream(t, func(c net.Conn, _ *http.Request) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx")
		return false
	})
	_, dt := testDirect(t)
	for range 2 {
		if _, body, err := directGet(t, dt, up.ln.Addr().String()); err != nil || body != "x" {
			t.Fatalf("%q, %v", body, err)
		}
	}
	if n := up.accepts.Load(); n != 2 {
		t.Errorf("upstream connections: %d, want 2 (Connection: close honoured)", n)
	}
	up2 := startRawUpstream(t, rawOK(strings.Repeat("y", 100_000)))
	req, _ := http.NewRequest("GET", "http://"+up2.ln.Addr().String()+"/", nil)
	resp, err := dt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = resp.Body.Read(make([]byte, 10))
	resp.Body.Close() // early: the rest of the body is unread
	if _, body, err := directGet(t, dt, up2.ln.Addr().String()); err != nil || len(body) != 100_000 {
		t.Fatalf("after an early close: %d bytes, %v", len(body), err)
	}
	if n := up2.accepts.Load(); n != 2 {
		t.Errorf("upstream connections: %d, want 2 (a half-read connection is not reused)", n)
	}
}

// TestDirectTransportRefusesBadHeaders: a header value with CR, LF or NUL
// (one the proxy adds from configuration, say) is refused before a byte is
// written, as net/http's Transport refuses it: no request splitting
// upstream.
func TestDirectTransportRefusesBadHeaders(t *testing.T) {
	var got atomic.Int32
	up := startRawUpstream(t, func(c net.Conn, r *http.Request) bool { got.Add(1); return rawOK("")(c, r) })
	_, dt := testDirect(t)
	for _, h := range []struct{ k, v string }{
		{"X-A", "v\r\nX-Injected: 1"}, {"X-A", "v\nGET /smuggled HTTP/1.1"}, {"X-A", "v\x00"}, {"X A", "v"}, {"X-A\r\n", "v"},
	} {
		req, _ := http.NewRequest("GET", "http://"+up.ln.Addr().String()+"/", nil)
		req.Header[h.k] = []string{h.v}
		if _, err := dt.RoundTrip(req); err == nil {
			t.Errorf("header %q: %q was sent", h.k, h.v)
		}
	}
	if n := got.Load(); n != 0 {
		t.Errorf("the upstream received %d requests", n)
	}
}

// TestDirectTransportResponseHeaderLimit: response headers beyond Envoy's
// default 60 KiB fail the request, as with net/http's Transport.
func TestDirectTransportResponseHeaderLimit(t *testing.T) {
	up := startRawUpstream(t, func(c net.Conn, _ *http.Request) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 70<<10)+"\r\nContent-Length: 0\r\n\r\n")
		return true
	})
	_, dt := testDirect(t)
	_, _, err := directGet(t, dt, up.ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "exceeded") {
		t.Fatalf("70 KiB of response headers: %v, want the limit", err)
	}
}

// TestDirectTransportInformational: 1xx responses reach the httptrace
// hook (ReverseProxy forwards them to the client) and the final response
// follows; a 101 to a request without Upgrade is an error.
func TestDirectTransportInformational(t *testing.T) {
	up := startRawUpstream(t, func(c net.Conn, r *http.Request) bool {
		if r.URL.Path == "/switch" {
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")
			return false
		}
		_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	_, dt := testDirect(t)
	var hints []int
	req, _ := http.NewRequest("GET", "http://"+up.ln.Addr().String()+"/", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			if h.Get("Link") == "" {
				t.Errorf("103 without its Link header")
			}
			hints = append(hints, code)
			return nil
		},
	}))
	resp, err := dt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" || len(hints) != 1 || hints[0] != 103 {
		t.Errorf("status %d body %q hints %v", resp.StatusCode, b, hints)
	}
	req, _ = http.NewRequest("GET", "http://"+up.ln.Addr().String()+"/switch", nil)
	if _, err := dt.RoundTrip(req); err == nil {
		t.Error("a 101 to a request without Upgrade was accepted")
	}
}

// TestDirectTransportCancel: a cancelled request (client gone, route
// timeout) returns at once while the upstream stalls, and its connection
// is not reused.
func TestDirectTransportCancel(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	up := startRawUpstream(t, func(c net.Conn, r *http.Request) bool {
		if n.Add(1) == 1 {
			<-release
			return false
		}
		return rawOK("fine")(c, r)
	})
	defer close(release)
	_, dt := testDirect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+up.ln.Addr().String()+"/", nil)
	done := make(chan error, 1)
	go func() { _, err := dt.RoundTrip(req); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("stalled upstream, deadline passed: %v, want DeadlineExceeded", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("RoundTrip did not return after its context ended")
	}
	if _, body, err := directGet(t, dt, up.ln.Addr().String()); err != nil || body != "fine" {
		t.Fatalf("next request: %q, %v", body, err)
	}
	if c := up.accepts.Load(); c != 2 {
		t.Errorf("upstream connections: %d, want 2 (the cancelled one is not reused)", c)
	}
}

// TestDirectTransportRetired: a retired transport closes its pooled
// connections and pools no new ones.
func TestDirectTransportRetired(t *testing.T) {
	up := startRawUpstream(t, rawOK("r"))
	ut, _ := testDirect(t)
	if _, _, err := directGet(t, ut, up.ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	ut.retire()
	for range 2 {
		if _, _, err := directGet(t, ut, up.ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	if n := up.accepts.Load(); n != 3 {
		t.Errorf("upstream connections: %d, want 3 (none reused after retirement)", n)
	}
}

// TestDirectEligible: only body-less GET and HEAD without Upgrade to a
// plaintext upstream take the direct path.
func TestDirectEligible(t *testing.T) {
	mk := func(method, url string, body io.Reader, h ...string) *http.Request {
		r, _ := http.NewRequest(method, url, body)
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Set(h[i], h[i+1])
		}
		return r
	}
	for _, c := range []struct {
		r    *http.Request
		want bool
	}{
		{mk("GET", "http://a/", nil), true},
		{mk("HEAD", "http://a/", nil), true},
		{mk("POST", "http://a/", nil), false},
		{mk("DELETE", "http://a/", nil), false},
		{mk("GET", "http://a/", strings.NewReader("x")), false},
		{mk("GET", "https://a/", nil), false},
		{mk("GET", "http://a/", nil, "Upgrade", "websocket", "Connection", "Upgrade"), false},
	} {
		if got := directEligible(c.r); got != c.want {
			t.Errorf("%s %s body=%v header=%v: eligible %v, want %v", c.r.Method, c.r.URL, c.r.Body != nil, c.r.Header, got, c.want)
		}
	}
}

// TestDirectTransportHead: a HEAD response announces a length but carries
// no body; the connection is reused for the next request.
func TestDirectTransportHead(t *testing.T) {
	up := startRawUpstream(t, func(c net.Conn, r *http.Request) bool {
		if r.Method == http.MethodHead {
			_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
			return err == nil
		}
		return rawOK("hello")(c, r)
	})
	_, dt := testDirect(t)
	req, _ := http.NewRequest("HEAD", "http://"+up.ln.Addr().String()+"/", nil)
	resp, err := dt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != 5 {
		t.Errorf("HEAD Content-Length %d, want 5", resp.ContentLength)
	}
	if _, body, err := directGet(t, dt, up.ln.Addr().String()); err != nil || body != "hello" {
		t.Fatalf("GET after HEAD: %q, %v", body, err)
	}
	if n := up.accepts.Load(); n != 1 {
		t.Errorf("upstream connections: %d, want 1", n)
	}
}

// TestDirectTransportUnsolicitedBytes: bytes an upstream sends on an idle
// connection (a second response to one request, a body after a HEAD
// response) are never read as the next request's response: that
// connection is dropped, as net/http's Transport drops it.
func TestDirectTransportUnsolicitedBytes(t *testing.T) {
	sent := make(chan struct{})
	var n atomic.Int32
	up := startRawUpstream(t, func(c net.Conn, r *http.Request) bool {
		if n.Add(1) == 1 {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
			time.Sleep(50 * time.Millisecond) // after the client pooled the connection
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
			close(sent)
			return true
		}
		return rawOK("fresh")(c, r)
	})
	_, dt := testDirect(t)
	if _, body, err := directGet(t, dt, up.ln.Addr().String()); err != nil || body != "first" {
		t.Fatalf("first: %q, %v", body, err)
	}
	<-sent
	// The bytes are on the loopback socket once the write returned.
	if _, body, err := directGet(t, dt, up.ln.Addr().String()); err != nil || body != "fresh" {
		t.Fatalf("second request got %q, %v; want its own response", body, err)
	}
}

// TestDirectTransportGotConn: the direct path calls httptrace's GotConn as
// net/http's Transport does (retry.go classifies failures by it), with
// Reused set on a pooled connection.
func TestDirectTransportGotConn(t *testing.T) {
	up := startRawUpstream(t, rawOK("c"))
	_, dt := testDirect(t)
	var got []bool
	for range 2 {
		req, _ := http.NewRequest("GET", "http://"+up.ln.Addr().String()+"/", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { got = append(got, ci.Reused) },
		}))
		resp, err := dt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if len(got) != 2 || got[0] || !got[1] {
		t.Errorf("GotConn Reused per request: %v, want [false true]", got)
	}
}
