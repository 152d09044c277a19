package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// rawExchange writes req on a new HTTP/1.1 connection to the edge listener
// and reads one response; with closeWrite the client half-closes after
// writing (a body shorter than its Content-Length). It returns the status,
// or 0 when the proxy closed the connection without a response.
func (e *edgeEnv) rawExchange(t *testing.T, req string, closeWrite bool) int {
	t.Helper()
	c := e.dialEdge(t)
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		_ = c.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// resetMidBody opens a connection, sends part of a request body and resets
// the TCP connection (SO_LINGER 0), as a client that dies mid-upload.
func (e *edgeEnv) resetMidBody(t *testing.T) {
	t.Helper()
	raw, err := net.Dial("tcp", e.base[len("https://"):])
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{RootCAs: pool(e.serverCA.Cert), ServerName: "proxy.test", NextProtos: []string{"http/1.1"}})
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 100000\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	_ = raw.(*net.TCPConn).SetLinger(0)
	_ = raw.Close()
}

// TestClientProtocolErrorsNeverEjectBackend: malformed request bodies
// (bad chunked encoding, a body shorter than its Content-Length, a client
// reset mid-body) are the client's fault: each gets 400 (or a closed
// connection), never 503, and none counts toward outlier detection, so the
// one backend of the cluster is never ejected and the next valid request
// is served. No client certificate is needed on this listener: today 5
// such requests would take a backend out for 30 s.
func TestClientProtocolErrorsNeverEjectBackend(t *testing.T) {
	b := startBackend(t, "backend")
	e := newEdgeEnv(t, [][2]string{{"/", "app"}}, nil, backendSpec{name: "app", endpoints: []string{b.addr()}}.build()...)
	waitHosts(t, e.px.Proxy, "app", 1)
	const chunked = "POST / HTTP/1.1\r\nHost: proxy.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
	codes := map[int]int{}
	for range 20 {
		codes[e.rawExchange(t, chunked, false)]++
	}
	for range 5 {
		codes[e.rawExchange(t, "POST / HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 100\r\n\r\nshort", true)]++
	}
	for range 5 {
		e.resetMidBody(t)
	}
	if codes[http.StatusBadRequest] != 25 {
		t.Errorf("malformed bodies answered %v; want 25 x 400", codes)
	}
	code, body, err := get(e.cl, e.base+"/")
	if err != nil || code != http.StatusOK || body != "backend" {
		t.Fatalf("valid request after malformed ones: %d %q %v; want 200 from the backend", code, body, err)
	}
	// The request goes upstream as the client sent it: net/http adds no
	// Accept-Encoding of its own (Envoy forwards headers unchanged).
	if code := e.rawExchange(t, "GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n", false); code != http.StatusOK {
		t.Fatalf("raw valid request: %d", code)
	}
	if got := b.lastHeader().Get("Accept-Encoding"); got != "" {
		t.Errorf("backend got Accept-Encoding %q the client never sent", got)
	}
	if n := usableHosts(e.px.Proxy, "app"); n != 1 {
		t.Fatalf("the backend is not usable after client protocol errors (usable hosts %d): %+v", n, e.px.Status().Clusters)
	}
	for _, l := range e.px.log.find(map[string]string{"msg": "request", "status": "503"}) {
		t.Errorf("a client protocol error was answered 503: %v", l)
	}
}
