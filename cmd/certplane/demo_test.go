package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certplane/certplane/demobackend"
)

// syncBuffer is a bytes.Buffer safe for the demo goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// demoPortsFree skips when another process holds the demo's fixed ports.
func demoPortsFree(t *testing.T) {
	t.Helper()
	for _, a := range append([]string{defaultInitListen, demoAdmin}, defaultInitBackends...) {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Skipf("demo port %s is busy: %v", a, err)
		}
		ln.Close()
	}
}

func TestDemoRunsBackendsAndStops(t *testing.T) {
	demoPortsFree(t)
	ready := make(chan string, 1)
	demoProxy = func(_ context.Context, dir string, _ io.Writer) error { ready <- dir; return nil }
	t.Cleanup(func() { demoProxy = startDemoProxy })
	dir := filepath.Join(t.TempDir(), "ex")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, []string{"--dir", dir}, &out, &errb) }()
	select {
	case got := <-ready:
		if got != dir {
			t.Fatalf("proxy started on %s, want %s", got, dir)
		}
	case err := <-done:
		t.Fatalf("demo ended early: %v\n%s%s", err, out.String(), errb.String())
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not start the proxy")
	}
	for i, a := range defaultInitBackends {
		resp, err := http.Get("http://" + a + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := []string{"backend 1\n", "backend 2\n"}[i]; string(b) != want {
			t.Fatalf("%s answered %q, want %q", a, b, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop on cancel")
	}
	if s := out.String(); !strings.Contains(s, "curl --cacert "+filepath.Join(dir, "certs/trust/clients/ca.pem")+" --cert "+filepath.Join(dir, "clients/mallory.crt")) || !strings.HasSuffix(s, "Press Ctrl-C to stop.\nstopping\n") {
		t.Fatalf("demo output:\n%s", s)
	}
	for _, a := range defaultInitBackends { // the backends released their ports
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s still held after the demo stopped: %v", a, err)
		}
		ln.Close()
	}
	// The directory is an init example now: a second demo reuses it.
	if d, cleanup, err := demoDir(dir); err != nil || d != dir {
		t.Fatalf("reuse %s: %v", dir, err)
	} else {
		cleanup()
	}
}

func TestDemoWithoutProxySaysSo(t *testing.T) {
	demoPortsFree(t)
	demoProxy = func(context.Context, string, io.Writer) error { return errors.New("no proxy here") }
	t.Cleanup(func() { demoProxy = startDemoProxy })
	var out, errb syncBuffer
	err := runDemo(context.Background(), nil, &out, &errb)
	if err == nil || err.Error() != "start the proxy: no proxy here" {
		t.Fatalf("demo: %v", err)
	}
	if s := out.String(); strings.Contains(s, "curl") || !strings.Contains(s, "but no proxy serves 127.0.0.1:8443.") {
		t.Fatalf("demo output pretends:\n%s", s)
	}
	for _, a := range defaultInitBackends {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s still held after the demo failed: %v", a, err)
		}
		ln.Close()
	}
}

func TestBackendCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- demobackend.New("b", nil).Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	if _, errb, code := cli(t, "backend", "--probe", "http://"+ln.Addr().String()+"/healthz"); code != 0 {
		t.Fatalf("probe healthy: exit %d %s", code, errb)
	}
	_, errb, code := cli(t, "backend", "--probe", "http://"+ln.Addr().String()+"/nope/healthz", "--timeout", "1s")
	if code != 0 { // any path answers 200: the catch-all
		t.Fatalf("probe catch-all: exit %d %s", code, errb)
	}
	http.Post("http://"+ln.Addr().String()+"/healthz/fail", "", nil)
	_, errb, code = cli(t, "backend", "--probe", "http://"+ln.Addr().String()+"/healthz")
	if want := "certplane backend: probe http://" + ln.Addr().String() + "/healthz: status 503 Service Unavailable\n"; code != 1 || errb != want {
		t.Fatalf("probe failing: exit %d %q, want %q", code, errb, want)
	}
}
