package admin

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certplane/certplane/status"
)

func serve(t *testing.T, o Options) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, lis, Handler(o)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + lis.Addr().String()
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestEndpoints(t *testing.T) {
	var ready atomic.Bool
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "certplane_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	base := serve(t, Options{
		Ready:    ready.Load,
		Registry: reg,
		Status: func() any {
			return status.Status{ControlPlane: &status.ControlPlane{Ready: ready.Load(), Versions: map[string]string{"secrets": "abc"}}}
		},
	})

	if code, body, _ := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body, _ := get(t, base+"/readyz"); code != 503 || body != "not ready: no valid configuration served yet\n" {
		t.Errorf("/readyz before ready = %d %q", code, body)
	}
	ready.Store(true)
	if code, body, _ := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz when ready = %d %q", code, body)
	}

	code, body, h := get(t, base+"/status")
	if code != 200 || h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("/status = %d, headers %v", code, h)
	}
	var st status.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.ControlPlane == nil || !st.ControlPlane.Ready || st.ControlPlane.Versions["secrets"] != "abc" {
		t.Errorf("/status decoded %+v", st.ControlPlane)
	}
	if strings.Contains(body, `"proxy"`) {
		t.Error("/status has an empty proxy section")
	}

	code, body, _ = get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, "certplane_test_total 3") {
		t.Errorf("/metrics = %d:\n%s", code, body)
	}
	if strings.Contains(body, "go_goroutines") {
		t.Error("/metrics serves the global registry's Go collector; it must use the given registry only")
	}

	resp, err := http.Post(base+"/status", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /status = %d", resp.StatusCode)
	}
	if code, _, _ := get(t, base+"/nope"); code != 404 {
		t.Errorf("/nope = %d", code)
	}
}

// TestCurl checks the endpoints the way an operator or a probe calls them.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed; TestEndpoints covers the same with net/http")
	}
	base := serve(t, Options{Ready: func() bool { return true }, Status: func() any { return status.Status{} }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "--fail", base+"/readyz").CombinedOutput()
	if err != nil || string(out) != "ready\n" {
		t.Errorf("curl /readyz: %v %q", err, out)
	}
	out, err = exec.CommandContext(ctx, curl, "-sS", "--fail", base+"/status").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "{}" {
		t.Errorf("curl /status: %v %q", err, out)
	}
}
