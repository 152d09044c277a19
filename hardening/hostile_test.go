package hardening_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certplane/certplane/pki/pkitest"
)

// The proxy's fixed limits these tests hold it to: the TLS handshake
// timeout (proxy/listener.go) and the request_headers_timeout and
// max_request_headers_kb that certplane emits (docs/resources.md).
const (
	handshakeTimeout     = 10 * time.Second
	requestHeaderTimeout = 10 * time.Second
	maxRequestHeadersKB  = 60
)

// TestHostileClients runs the hostile-client matrix against one proxy fed
// by a real control plane. The slow cases wait for the real 10 s timeouts,
// so the subtests run in parallel.
func TestHostileClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{failureLogWindow: time.Second})
	t.Run("group", func(t *testing.T) {
		t.Run("slowloris handshake", func(t *testing.T) { t.Parallel(); slowlorisHandshake(t, e) })
		t.Run("slowloris headers", func(t *testing.T) { t.Parallel(); slowlorisHeaders(t, e) })
		t.Run("oversized headers", func(t *testing.T) { t.Parallel(); oversizedHeaders(t, e) })
		t.Run("bad certificate flood", func(t *testing.T) { t.Parallel(); badCertFlood(t, e) })
	})
	// After the flood (its own reasons are rate-limited per window).
	t.Run("SHA-1 client certificate refused", func(t *testing.T) { sha1Client(t, e) })
}

// clientHelloPrefix returns the first bytes of a real ClientHello.
func clientHelloPrefix(t *testing.T, n int) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	go func() { _ = tls.Client(c1, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}).Handshake() }()
	buf := make([]byte, n)
	if _, err := io.ReadFull(c2, buf); err != nil {
		t.Fatal(err)
	}
	return buf
}

// waitClosed reads until the peer closes and returns how long it took.
func waitClosed(c net.Conn, start time.Time, limit time.Duration) (time.Duration, error) {
	c.SetReadDeadline(start.Add(limit))
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, fmt.Errorf("still open after %s", limit)
			}
			return time.Since(start), nil
		}
	}
}

func checkCloseTimes(t *testing.T, what string, times []time.Duration, want time.Duration) {
	t.Helper()
	slices.Sort(times)
	lo, hi := times[0], times[len(times)-1]
	t.Logf("%s: %d connections closed by the proxy after %s..%s (timeout %s)", what, len(times), lo.Round(time.Millisecond), hi.Round(time.Millisecond), want)
	if lo < want-time.Second || hi > want+3*time.Second {
		t.Errorf("%s: closed after %s..%s, want about %s", what, lo, hi, want)
	}
}

// slowlorisHandshake: TCP connections that send nothing, or half a
// ClientHello, are closed at the handshake timeout, and valid clients are
// served meanwhile.
func slowlorisHandshake(t *testing.T, e *env) {
	const n = 100
	hello := clientHelloPrefix(t, 40)
	times := make([]time.Duration, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.portA))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if i%2 == 1 {
				if _, err := c.Write(hello); err != nil {
					errs <- err
					return
				}
			}
			d, err := waitClosed(c, start, handshakeTimeout+5*time.Second)
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
			}
			times[i] = d
		}()
	}
	// Served meanwhile.
	if _, err := handshake(e.portA, e.rootA, e.aliceA); err != nil {
		t.Errorf("valid client during slowloris: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkCloseTimes(t, "slowloris handshake (nothing, or 40 bytes of ClientHello)", times, handshakeTimeout)
}

// slowlorisHeaders: after a good handshake, headers trickle in one line
// every 500 ms; the connection is still closed at the request-header
// timeout, which each byte does not extend.
func slowlorisHeaders(t *testing.T, e *env) {
	const n = 50
	times := make([]time.Duration, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tlsDial(e.portA, e.rootA, e.aliceA)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			start := time.Now()
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				tick := time.NewTicker(500 * time.Millisecond)
				defer tick.Stop()
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n"); err != nil {
					return
				}
				for j := 0; ; j++ {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", j); err != nil {
							return
						}
					}
				}
			}()
			d, err := waitClosed(c, start, requestHeaderTimeout+5*time.Second)
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
			}
			times[i] = d
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkCloseTimes(t, "slowloris headers (one header line every 500ms)", times, requestHeaderTimeout)
}

func tlsDial(port int, root *pkitest.CA, cert *pkitest.Leaf) (*tls.Conn, error) {
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS()}
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
}

// oversizedHeaders: a request whose headers exceed max_request_headers_kb
// gets 431; one just under the limit is served.
func oversizedHeaders(t *testing.T, e *env) {
	try := func(size int) (int, error) {
		c, err := tlsDial(e.portA, e.rootA, e.aliceA)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		req := "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + strings.Repeat("a", size) + "\r\n\r\n"
		// The server may answer and close before reading everything.
		go io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	under := (maxRequestHeadersKB - 4) * 1024
	if code, err := try(under); err != nil || code != http.StatusOK {
		t.Errorf("headers of %d bytes (under %d KiB): status %d, err %v; want 200", under, maxRequestHeadersKB, code, err)
	}
	for _, size := range []int{(maxRequestHeadersKB + 8) * 1024, 1 << 20} {
		code, err := try(size)
		if err != nil || code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("headers of %d bytes: status %d, err %v; want 431", size, code, err)
		}
	}
}

// badCertFlood: attackers hammer listener A with refused handshakes while
// valid clients keep making requests, each on a new connection. Reports the
// valid clients' success rate and p99, and checks that failure log lines
// are rate-limited with every failure still counted.
func badCertFlood(t *testing.T, e *env) {
	dur := 5 * time.Second
	if s := os.Getenv("CERTPLANE_FLOOD_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 600 {
			t.Fatalf("CERTPLANE_FLOOD_SECONDS=%q: want 1..600", s)
		}
		dur = time.Duration(n) * time.Second
	}
	stranger := pkitest.NewCA(t, "Stranger CA").Client("mallory")
	expired := e.interA.Client("expired", pkitest.Expired())
	attackers := []*pkitest.Leaf{stranger, nil, expired, e.revokedA}

	// The slowloris subtests fail handshakes too (protocol_error, at their
	// timeout): count only the flood's reasons.
	flood := []string{"unknown_ca", "no_certificate", "expired", "revoked"}
	failBefore := handshakeFailures(t, e, flood)
	logBefore := e.connLog.count()
	end := time.Now().Add(dur)
	var attacks atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cert := attackers[i%len(attackers)]
			cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}
			if cert != nil {
				// Sent whatever CA names the server advertises, as an
				// attacker (or a misconfigured client) would.
				c := cert.TLS()
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
			}
			for time.Now().Before(end) {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", e.portA), cfg)
				if err == nil {
					c.SetReadDeadline(time.Now().Add(2 * time.Second))
					var b [1]byte
					_, err = c.Read(b[:])
					c.Close()
				}
				if err == nil {
					t.Error("a refused client read data")
					return
				}
				attacks.Add(1)
			}
		}()
	}
	pool := x509.NewCertPool()
	pool.AddCert(e.rootA.Cert)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{e.aliceA.TLS()}},
	}}
	var mu sync.Mutex
	var lat []time.Duration
	var failed int
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				start := time.Now()
				resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/", e.portA))
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					ok = ok && string(b) == "backend-a"
				}
				d := time.Since(start)
				mu.Lock()
				if ok {
					lat = append(lat, d)
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	total := len(lat) + failed
	if total == 0 {
		t.Fatal("no valid request completed")
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	t.Logf("bad-certificate flood for %s: %d refused handshakes (%.0f/s) from 8 attackers; valid clients (2, new TLS connection per request): %d/%d succeeded (%.2f%%), p50 %s, p99 %s, max %s",
		dur, attacks.Load(), float64(attacks.Load())/dur.Seconds(), len(lat), total, 100*float64(len(lat))/float64(total),
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	if failed > 0 {
		t.Errorf("%d of %d valid requests failed during the flood", failed, total)
	}

	// Every failure is counted in the metric, and in the log either as a
	// line of its own or in the "suppressed" count of a later line (the
	// next line for that key, or the sweep's summary once the window ends).
	var lines, accounted, fails int
	var reasons map[string]int
	defer func() {
		if t.Failed() {
			t.Logf("failures %d, accounted %d, lines %d, reasons %v", fails, accounted, lines, reasons)
		}
	}()
	waitFor(t, "every failed handshake accounted for in the log", func() bool {
		fails = handshakeFailures(t, e, flood) - failBefore
		lines, accounted, reasons = 0, 0, map[string]int{}
		for _, l := range e.connLog.since(logBefore) {
			if l["result"] != "fail" || l["event"] != "handshake" || !slices.Contains(flood, failureReason(l)) {
				continue
			}
			n, _ := l["suppressed"].(float64)
			accounted += int(n)
			if l["msg"] == "handshake" {
				lines++
				accounted++
				reasons[failureReason(l)]++
			}
		}
		return fails >= int(attacks.Load()) && accounted == fails
	})
	windows := int(dur/time.Second) + 2
	t.Logf("failure log: %d failed handshakes -> %d log lines (reasons %v) + suppressed counts; window 1s", accounted, lines, reasons)
	if limit := len(reasons) * windows; lines > limit {
		t.Errorf("%d failure lines for %d failures: want at most %d (one per reason and client IP per window)", lines, accounted, limit)
	}
	for _, want := range flood {
		if reasons[want] == 0 {
			t.Errorf("no failure line with reason %q; got %v", want, reasons)
		}
	}
}

// failureReason is the failure reason of a connection-log line: Envoy's
// %DOWNSTREAM_TRANSPORT_FAILURE_REASON% key.
func failureReason(l map[string]any) string {
	if r, ok := l["transport_failure"].(string); ok {
		return r
	}
	return fmt.Sprint(l["reason"])
}

// handshakeFailures sums certplane_proxy_handshakes_total{listener="a",
// result="fail"} over the given reasons.
func handshakeFailures(t *testing.T, e *env, reasons []string) int {
	t.Helper()
	mfs, err := e.prx.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() != "certplane_proxy_handshakes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["listener"] == "a" && labels["result"] == "fail" && slices.Contains(reasons, labels["reason"]) {
				n += int(m.GetCounter().GetValue())
			}
		}
	}
	return n
}

// sha1Client: a client certificate signed with SHA-1 by a trusted CA is
// refused at the handshake with reason bad_signature_algorithm.
func sha1Client(t *testing.T, e *env) {
	crt, key := opensslCert(t, e.interA.CertPEM(), keyPEM(t, e.interA), "sha1-client", "sha1", extClient)
	cert, err := tls.X509KeyPair(append(crt, e.interA.CertPEM()...), key)
	if err != nil {
		t.Fatal(err)
	}
	before := e.connLog.count()
	pool := x509.NewCertPool()
	pool.AddCert(e.rootA.Cert)
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.portA), &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{cert}})
	if err == nil {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		var b [1]byte
		_, err = c.Read(b[:])
		c.Close()
	}
	if err == nil {
		t.Fatal("SHA-1 client certificate accepted")
	}
	waitFor(t, "the refusal in the connection log", func() bool {
		for _, l := range e.connLog.since(before) {
			if l["msg"] == "handshake" && l["result"] == "fail" {
				if r := failureReason(l); r != "bad_signature_algorithm" {
					t.Fatalf("SHA-1 client refused with reason %q, want bad_signature_algorithm: %v", r, l)
				}
				return true
			}
		}
		return false
	})
}
