package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certplane/certplane/internal/testutil"

	"github.com/certplane/certplane/demobackend"
)

// syncBuffer is safe for the demo goroutine and the test; Wrote ticks
// after writes, so a test waits for output without polling.
type syncBuffer = testutil.SyncBuffer

func newSyncBuffer() *syncBuffer { return &syncBuffer{} }

// demoRun is a `certplane demo` running in this process.
type demoRun struct {
	dir, listen, admin string
	backends           []string // the addresses the demo backends bound
	out, errb          *syncBuffer
	cancel             context.CancelFunc
	done               chan error
}

// startDemoCmd runs runDemo with its backends on port 0 (the demo binds
// them and prints where) and the proxy's listener and admin endpoint on
// free ports, retried when one is taken first (onFreePorts), and waits
// until the demo says it is ready. The test stops it with stop.
func startDemoCmd(t *testing.T) *demoRun {
	t.Helper()
	var d *demoRun
	onFreePorts(t, 2, func(addrs []string) error {
		d = &demoRun{dir: filepath.Join(t.TempDir(), "ex"), listen: addrs[0], admin: addrs[1],
			out: newSyncBuffer(), errb: newSyncBuffer(), done: make(chan error, 1)}
		var ctx context.Context
		ctx, d.cancel = context.WithCancel(context.Background())
		go func() {
			d.done <- runDemo(ctx, []string{"--dir", d.dir, "--listen", d.listen, "--admin-address", d.admin,
				"--backends", "127.0.0.1:0,127.0.0.1:0"}, d.out, d.errb)
		}()
		return d.waitReady(t)
	})
	for _, m := range regexp.MustCompile(`backend \d listening on http://(\S+)`).FindAllStringSubmatch(d.out.String(), -1) {
		d.backends = append(d.backends, m[1])
	}
	if len(d.backends) != 2 {
		t.Fatalf("demo output names %d backend addresses, want 2:\n%s", len(d.backends), d.out.String())
	}
	return d
}

// waitReady waits for "Press Ctrl-C to stop.". When the proxy logs that its
// listener port is taken, or the demo ends for a taken port, it stops the
// demo and returns the error for onFreePorts.
func (d *demoRun) waitReady(t *testing.T) error {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if strings.Contains(d.out.String(), "Press Ctrl-C to stop.") {
			return nil
		}
		if e := d.errb.String(); portTaken(e) {
			d.cancel()
			<-d.done
			return errors.New(e)
		}
		select {
		case err := <-d.done:
			if err != nil && portTaken(err.Error()) {
				return err
			}
			t.Fatalf("demo ended early: %v\n%s%s", err, d.out.String(), d.errb.String())
		case <-d.out.Wrote():
		case <-d.errb.Wrote():
		case <-deadline:
			t.Fatalf("demo not ready after 30s:\n%s%s", d.out.String(), d.errb.String())
		}
	}
}

// stop interrupts the demo and waits until runDemo has returned.
func (d *demoRun) stop(t *testing.T) {
	t.Helper()
	d.cancel()
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("demo after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
}

// fakeDemoProxy stands in for startDemoProxy: it reports the directory it
// was given on started and, once ctx ends, sets stopped before it reports
// its result, as the real proxy does after its last log line.
func fakeDemoProxy(t *testing.T, started chan<- string, stopped *atomic.Bool) {
	demoProxy = func(ctx context.Context, dir string, _ demoAddrs, _, _ io.Writer) (<-chan error, error) {
		started <- dir
		done := make(chan error, 1)
		go func() { <-ctx.Done(); stopped.Store(true); done <- nil }()
		return done, nil
	}
	t.Cleanup(func() { demoProxy = startDemoProxy })
}

// TestDemoRunsBackendsAndStops: the backends answer, Ctrl-C stops the demo,
// and runDemo returns only after the proxy has stopped and the backends
// have released their ports.
func TestDemoRunsBackendsAndStops(t *testing.T) {
	started := make(chan string, 1)
	var stopped atomic.Bool
	fakeDemoProxy(t, started, &stopped)
	d := startDemoCmd(t)
	if got := <-started; got != d.dir {
		t.Fatalf("proxy started on %s, want %s", got, d.dir)
	}
	for i, a := range d.backends {
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
	d.stop(t)
	if !stopped.Load() {
		t.Error("runDemo returned before its proxy had stopped")
	}
	_, port, _ := net.SplitHostPort(d.listen)
	if s := d.out.String(); !strings.Contains(s, "curl --cacert "+filepath.Join(d.dir, "certs/trust/clients/ca.pem")+" --cert "+filepath.Join(d.dir, "clients/mallory.crt")) ||
		!strings.Contains(s, "https://localhost:"+port+"/") || !strings.HasSuffix(s, "Press Ctrl-C to stop.\nstopping\n") {
		t.Fatalf("demo output:\n%s", s)
	}
	cfg, err := os.ReadFile(filepath.Join(d.dir, "config", "listeners.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := initConfigYAML(d.listen, d.backends); string(cfg) != want {
		t.Errorf("config/listeners.yaml:\n%s\nwant the bound addresses:\n%s", cfg, want)
	}
	for _, a := range d.backends { // the backends released their ports
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s still held after the demo stopped: %v", a, err)
		}
		ln.Close()
	}
	// The directory is an init example now: a second demo reuses it.
	if dir, cleanup, err := demoDir(d.dir, initOptions{listen: d.listen, backends: d.backends}); err != nil || dir != d.dir {
		t.Fatalf("reuse %s: %v", d.dir, err)
	} else {
		cleanup()
	}
}

func TestDemoWithoutProxySaysSo(t *testing.T) {
	demoProxy = func(context.Context, string, demoAddrs, io.Writer, io.Writer) (<-chan error, error) {
		return nil, errors.New("no proxy here")
	}
	t.Cleanup(func() { demoProxy = startDemoProxy })
	out, errb := newSyncBuffer(), newSyncBuffer()
	// The fake proxy binds nothing, so --listen and --admin-address are only
	// names here.
	err := runDemo(context.Background(), []string{"--listen", "127.0.0.1:8443", "--admin-address", "127.0.0.1:18002",
		"--backends", "127.0.0.1:0,127.0.0.1:0"}, out, errb)
	if err == nil || err.Error() != "start the proxy: no proxy here" {
		t.Fatalf("demo: %v", err)
	}
	if s := out.String(); strings.Contains(s, "curl") || !strings.Contains(s, "but no proxy serves 127.0.0.1:8443.") {
		t.Fatalf("demo output pretends:\n%s", s)
	}
	for _, m := range regexp.MustCompile(`listening on http://(\S+)`).FindAllStringSubmatch(out.String(), -1) {
		ln, err := net.Listen("tcp", m[1])
		if err != nil {
			t.Fatalf("%s still held after the demo failed: %v", m[1], err)
		}
		ln.Close()
	}
}

// TestDemoFlagErrors: addresses the demo cannot use are refused before
// anything starts.
func TestDemoFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "localhost:8443"}, `certplane demo: --listen "localhost:8443": host must be an IP address` + "\n"},
		{[]string{"--listen", "127.0.0.1:0"}, `certplane demo: --listen "127.0.0.1:0": port must be 1-65535` + "\n"},
		{[]string{"--admin-address", "127.0.0.1:0"}, `certplane demo: --admin-address "127.0.0.1:0": port must be 1-65535` + "\n"},
	} {
		if _, errb, code := cli(t, append([]string{"demo"}, tc.args...)...); code != 2 || errb != tc.want {
			t.Errorf("demo %v: exit %d %q, want exit 2 %q", tc.args, code, errb, tc.want)
		}
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
