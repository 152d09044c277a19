package hardening_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certplane/certplane/pki/pkitest"
)

// TestIdleConnections holds many idle keep-alive TLS connections (mTLS
// verified, one request each) on the real `certplane proxy` process and
// reports its memory per connection: the growth of its RSS divided by the
// number of connections. 1,000 connections by default; 10,000 with
// CERTPLANE_HEAVY=1 (not with -short).
func TestIdleConnections(t *testing.T) {
	n := 1000
	if os.Getenv("CERTPLANE_HEAVY") == "1" && !testing.Short() {
		n = 10000
	}
	raiseNoFile(t, uint64(n)+1024)
	bin := certplaneBin(t)

	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	port := freePort(t)
	std := pkitest.NewStandard(t, fmt.Sprintf("127.0.0.1:%d", port), backend.Listener.Addr().String())
	// No health check: the backend serves "/" only.
	std.WriteConfig("listeners.yaml", strings.Replace(pkitest.ConfigYAML(fmt.Sprintf("127.0.0.1:%d", port), backend.Listener.Addr().String()),
		"    health_check: {path: /healthz, interval: 1s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2}\n", "", 1))
	adminPort := freePort(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "proxy", "--certs", std.Certs, "--config", std.Config,
		"--admin-address", fmt.Sprintf("127.0.0.1:%d", adminPort), "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()

	pool := x509.NewCertPool()
	pool.AddCert(std.CA.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{std.Alice.TLS()}, NextProtos: []string{"http/1.1"}}
	type held struct {
		c *tls.Conn
		r *bufio.Reader
	}
	open := func() (held, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
		if err != nil {
			return held{}, err
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		h := held{c: c, r: bufio.NewReader(c)}
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			c.Close()
			return held{}, err
		}
		resp, err := http.ReadResponse(h.r, nil)
		if err != nil {
			c.Close()
			return held{}, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			c.Close()
			return held{}, fmt.Errorf("status %d body %q", resp.StatusCode, b)
		}
		c.SetDeadline(time.Time{})
		return h, nil
	}
	waitFor(t, "the proxy serving", func() bool {
		h, err := open()
		if err == nil {
			h.c.Close()
		}
		return err == nil
	})
	// Warm up so that lazily built state is in the baseline.
	for range 20 {
		h, err := open()
		if err != nil {
			t.Fatal(err)
		}
		h.c.Close()
	}
	waitFor(t, "warm-up connections closed", func() bool { return proxyConns(t, adminPort) == 0 })
	rss0 := rssKB(t, cmd.Process.Pid)

	start := time.Now()
	conns := make([]held, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				h, err := open()
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					continue
				}
				conns[i] = h
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	defer func() {
		for _, h := range conns {
			if h.c != nil {
				h.c.Close()
			}
		}
	}()
	for err := range errs {
		t.Fatal(err)
	}
	opened := time.Since(start)
	if got := proxyConns(t, adminPort); got != n {
		t.Fatalf("proxy reports %d open connections, want %d", got, n)
	}
	rss1 := rssKB(t, cmd.Process.Pid)
	per := float64(rss1-rss0) * 1024 / float64(n)
	t.Logf("%d idle mTLS keep-alive connections held on certplane proxy (opened in %s, %.0f/s): RSS %d KiB -> %d KiB, %.1f KiB per connection",
		n, opened.Round(time.Millisecond), float64(n)/opened.Seconds(), rss0, rss1, per/1024)

	// Still held, and still usable: one request on a held connection.
	h := conns[n/2]
	h.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(h.c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(h.r, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request on a held connection: %v %v", resp, err)
	}
	resp.Body.Close()
}

// raiseNoFile raises RLIMIT_NOFILE to at least want (up to the hard limit),
// or skips when the hard limit is too low. The proxy child inherits it.
func raiseNoFile(t *testing.T, want uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= want {
		return
	}
	if lim.Max < want {
		t.Skipf("RLIMIT_NOFILE hard limit %d is below the %d descriptors this test needs", lim.Max, want)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
}

// rssKB is VmRSS of a process, from /proc/<pid>/status.
func rssKB(t *testing.T, pid int) int { return procKB(t, pid, "VmRSS") }

// procKB reads one kB figure of /proc/PID/status: VmRSS, or VmHWM (peak).
func procKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc status", field)
	return 0
}

// proxyConns reads certplane_proxy_listener_connections from /metrics.
func proxyConns(t *testing.T, adminPort int) int {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, `certplane_proxy_listener_connections{listener="https"}`) {
			f := strings.Fields(line)
			n, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return int(n)
		}
	}
	return 0
}
