package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
)

// funcBackend is a loopback HTTP server running h, counting its requests.
type funcBackend struct {
	*httptest.Server
	mu   sync.Mutex
	hits int
}

func startFuncBackend(t testing.TB, h http.HandlerFunc) *funcBackend {
	t.Helper()
	b := &funcBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.hits++
		b.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *funcBackend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

func (b *funcBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits
}

// resetHandler closes the connection without answering: a reset.
func resetHandler(w http.ResponseWriter, _ *http.Request) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		c.Close()
	}
}

// refusedAddr is a loopback address where nothing listens.
func refusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func retries(attempts uint32, on ...config.RetryOn) *config.RetryPolicy {
	return &config.RetryPolicy{Attempts: attempts, On: on}
}

// TestRetryOnReset: a backend that resets the connection is retried on the
// other host when the route retries on reset; with the default policy
// (connect-failure only: the request may have reached the backend) the
// client gets Envoy's 503.
func TestRetryOnReset(t *testing.T) {
	bad1, bad2 := startFuncBackend(t, resetHandler), startFuncBackend(t, resetHandler)
	good1 := startFuncBackend(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "good") })
	good2 := startFuncBackend(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "good") })
	l := &config.Listener{Name: "public", Routes: []config.Route{
		{Path: "/reset", Backend: "retrying", Retries: retries(1, config.RetryReset)},
		{Path: "/default", Backend: "plain"},
	}}
	e := newRoutingEnv(t, l,
		&config.Backend{Name: "retrying", Endpoints: endpointsOf(t, bad1.addr(), good1.addr())},
		&config.Backend{Name: "plain", Endpoints: endpointsOf(t, bad2.addr(), good2.addr())})
	for i := 0; i < 4; i++ {
		if code, body := e.do(t, "POST", "", "/reset", nil, strings.NewReader("pay 10")); code != 200 || body != "good" {
			t.Errorf("retry on reset: %d %q, want 200 good", code, body)
		}
	}
	if bad1.count() == 0 {
		t.Error("the resetting backend was never tried: the test shows nothing")
	}
	resets := 0
	for i := 0; i < 4; i++ {
		code, body := e.do(t, "POST", "", "/default", nil, strings.NewReader("pay 10"))
		switch {
		case code == 503 && body == "upstream connect error or disconnect/reset before headers":
			resets++
		case code != 200:
			t.Errorf("default policy: %d %q", code, body)
		}
	}
	if resets == 0 || bad2.count() != resets {
		t.Errorf("default policy: %d resets answered 503, backend saw %d: a reset must not be retried without reset in retries.on", resets, bad2.count())
	}
}

// TestRetryConnectFailureAnyMethod: the default policy retries a POST
// whose connection failed (it never left), and attempts: 0 turns retries
// off.
func TestRetryConnectFailureAnyMethod(t *testing.T) {
	good := startFuncBackend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	dead := refusedAddr(t)
	l := &config.Listener{Name: "public", Routes: []config.Route{
		{Path: "/none", Backend: "noretry", Retries: retries(0)},
		{PathPrefix: "/", Backend: "app"},
	}}
	e := newRoutingEnv(t, l,
		&config.Backend{Name: "app", Endpoints: endpointsOf(t, dead, good.addr())},
		&config.Backend{Name: "noretry", Endpoints: endpointsOf(t, dead, good.addr())})
	for i := 0; i < 4; i++ {
		if code, body := e.do(t, "POST", "", "/pay", nil, strings.NewReader("order 7")); code != 200 || body != "order 7" {
			t.Errorf("POST with one dead host: %d %q, want 200 and the body", code, body)
		}
	}
	failed := 0
	for i := 0; i < 4; i++ {
		if code, _ := e.do(t, "GET", "", "/none", nil, nil); code == 503 {
			failed++
		}
	}
	if failed == 0 {
		t.Error("attempts: 0 retried a connect failure")
	}
}

// TestRetry5xxReplaysBodyWithinBufferLimit: a retry on 5xx sends the
// request body again, as Envoy does from its buffer; a body larger than
// the listener's per_connection_buffer_limit_bytes (32 KiB) is not
// buffered and not retried. With one host, previous_hosts gives up after
// host_selection_retry_max_attempts and the retry goes to that host.
func TestRetry5xxReplaysBodyWithinBufferLimit(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	flaky := startFuncBackend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[r.Header.Get("X-Id")]++
		first := seen[r.Header.Get("X-Id")] == 1
		mu.Unlock()
		if first {
			w.WriteHeader(500)
			io.WriteString(w, "first try fails")
			return
		}
		w.Write(b)
	})
	l := &config.Listener{Name: "public", Routes: []config.Route{{PathPrefix: "/", Backend: "app", Retries: retries(2, config.Retry5xx)}}}
	e := newRoutingEnv(t, l, &config.Backend{Name: "app", Endpoints: endpointsOf(t, flaky.addr())})
	small := bytes.Repeat([]byte("s"), 20<<10)
	code, body := e.do(t, "POST", "", "/pay", http.Header{"X-Id": {"small"}}, bytes.NewReader(small))
	if code != 200 || body != string(small) {
		t.Errorf("20 KiB body retried on 5xx: %d, %d bytes back, want 200 and the whole body", code, len(body))
	}
	big := bytes.Repeat([]byte("b"), 64<<10)
	code, body = e.do(t, "POST", "", "/pay", http.Header{"X-Id": {"big"}}, bytes.NewReader(big))
	if code != 500 || body != "first try fails" {
		t.Errorf("64 KiB body over the 32 KiB buffer limit: %d, %d bytes back, want the backend's 500 (no retry)", code, len(body))
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["small"] != 2 || seen["big"] != 1 {
		t.Errorf("tries per request = %v, want small 2, big 1", seen)
	}
}

// TestRouteTimeouts: a route's timeout answers 504 "upstream request
// timeout"; its idle_timeout, shorter than the timeout, ends the wait for
// a silent backend with the stream idle timer's 504 "stream timeout".
func TestRouteTimeouts(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := startFuncBackend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		case <-time.After(30 * time.Second):
		}
	})
	ms := func(n int) *time.Duration { d := time.Duration(n) * time.Millisecond; return &d }
	l := &config.Listener{Name: "public", Routes: []config.Route{
		{Path: "/timeout", Backend: "slow", Timeout: ms(300)},
		{Path: "/idle", Backend: "slow", IdleTimeout: ms(300)},
	}}
	e := newRoutingEnv(t, l, &config.Backend{Name: "slow", Endpoints: endpointsOf(t, slow.addr())})
	if code, body := e.do(t, "GET", "", "/timeout", nil, nil); code != 504 || body != "upstream request timeout" {
		t.Errorf("route timeout: %d %q", code, body)
	}
	if code, body := e.do(t, "GET", "", "/idle", nil, nil); code != 504 || body != "stream timeout" {
		t.Errorf("route idle_timeout: %d %q", code, body)
	}
}

// TestLBPolicies: each lb_policy spreads requests over both hosts, and
// least_request prefers the host with fewer active requests (power of two
// choices: the busier one wins only when both choices fall on it, 1 in 4).
func TestLBPolicies(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	l := &config.Listener{Name: "public", Routes: []config.Route{
		{Path: "/rr", Backend: "rr"}, {Path: "/random", Backend: "random"}, {Path: "/least", Backend: "least"},
	}}
	eps := endpointsOf(t, a.addr(), b.addr())
	e := newRoutingEnv(t, l,
		&config.Backend{Name: "rr", Endpoints: eps},
		&config.Backend{Name: "random", Endpoints: eps, LBPolicy: config.LBRandom},
		&config.Backend{Name: "least", Endpoints: eps, LBPolicy: config.LBLeastRequest})
	for _, path := range []string{"/rr", "/random", "/least"} {
		got := map[string]int{}
		for i := 0; i < 40; i++ {
			_, body := e.do(t, "GET", "", path, nil, nil)
			got[body]++
		}
		if got["a"] == 0 || got["b"] == 0 || got["a"]+got["b"] != 40 {
			t.Errorf("%s: answers %v, want both hosts", path, got)
		}
		if path == "/rr" && got["a"] != 20 {
			t.Errorf("round robin: %v, want 20 each", got)
		}
	}

	busy, idle := &host{addr: "busy"}, &host{addr: "idle"}
	busy.active.Store(5)
	n := 0
	for i := 0; i < 4000; i++ {
		if lbLeastRequest.choose([]*host{busy, idle}, nil) == busy {
			n++
		}
	}
	if n < 600 || n > 1400 {
		t.Errorf("least_request picked the busy host %d of 4000 times, want about 1000 (both choices on it)", n)
	}
}

// TestRetryAndLBResourcesNACKed: what the proxy does not implement of a
// retry policy or load balancer is refused, not ignored.
func TestRetryAndLBResourcesNACKed(t *testing.T) {
	rc := envoy.RouteConfiguration(&config.Listener{Name: "l", Routes: []config.Route{{PathPrefix: "/", Backend: "b"}}}, envoy.Options{})
	rp := rc.VirtualHosts[0].Routes[1].GetRoute().RetryPolicy
	rp.RetryOn = "connect-failure,gateway-error"
	if _, err := buildRoutes(rc); err == nil || !strings.Contains(err.Error(), `retry_on "gateway-error" is not implemented by certplane proxy`) {
		t.Errorf("gateway-error: %v", err)
	}
	rp.RetryOn = "5xx"
	rp.RetryHostPredicate[0].Name = "envoy.retry_host_predicates.omit_canary_hosts"
	if _, err := buildRoutes(rc); err == nil || !strings.Contains(err.Error(), `"envoy.retry_host_predicates.omit_canary_hosts" is not implemented`) {
		t.Errorf("other predicate: %v", err)
	}
	rp.RetryHostPredicate = nil
	rp.PerTryTimeout = durationpb.New(time.Second)
	if err := checkFields("route configuration \"l\"", rc); err == nil || !strings.Contains(err.Error(), "per_try_timeout is set but not implemented") {
		t.Errorf("per_try_timeout: %v", err)
	}
	c, err := envoy.Cluster(&config.Backend{Name: "b", Endpoints: []config.Endpoint{{Host: "10.0.0.1", Port: 80}}}, envoy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.LbPolicy = clusterv3.Cluster_MAGLEV
	if err := checkFields("cluster \"b\"", c); err == nil || !strings.Contains(err.Error(), "lb_policy value MAGLEV is not implemented") {
		t.Errorf("maglev: %v", err)
	}
}
