package proxy

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// histogramCount reads the sample count of one histogram series.
func histogramCount(t testing.TB, o prometheus.Observer) uint64 {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestDurationHistograms: every request is observed in
// certplane_proxy_request_duration_seconds by listener, route, cluster and
// code class; only requests that reached an upstream are observed in
// certplane_proxy_upstream_duration_seconds.
func TestDurationHistograms(t *testing.T) {
	b := startBackend(t, "backend")
	e := newEdgeEnv(t, [][2]string{{"/app", "app"}}, nil, backendSpec{name: "app", endpoints: []string{b.addr()}}.build()...)
	waitHosts(t, e.px.Proxy, "app", 1)
	for range 3 {
		if code, _, err := get(e.cl, e.base+"/app/x"); err != nil || code != 200 {
			t.Fatalf("GET /app/x: %d %v", code, err)
		}
	}
	if code, _, err := get(e.cl, e.base+"/nowhere"); err != nil || code != 404 {
		t.Fatalf("GET /nowhere: %d %v, want 404 (no route)", code, err)
	}
	m := e.px.metrics
	// The request line is logged, and observed, after the response is sent:
	// wait for the last one.
	waitFor(t, "the 404 observed", func() bool { return histogramCount(t, m.requestDuration.WithLabelValues("edge", "", "", "4xx")) == 1 })
	if n := histogramCount(t, m.requestDuration.WithLabelValues("edge", "/app", "app", "2xx")); n != 3 {
		t.Errorf("request duration /app 2xx: %d samples, want 3", n)
	}
	if n := histogramCount(t, m.upstreamDuration.WithLabelValues("edge", "/app", "app", "2xx")); n != 3 {
		t.Errorf("upstream duration /app 2xx: %d samples, want 3", n)
	}
	if n := histogramCount(t, m.upstreamDuration.WithLabelValues("edge", "", "", "4xx")); n != 0 {
		t.Errorf("upstream duration of the unrouted 404: %d samples, want 0 (no upstream)", n)
	}
}

func TestCodeClass(t *testing.T) {
	for code, want := range map[int]string{101: "1xx", 200: "2xx", 304: "3xx", 421: "4xx", 503: "5xx", 0: "other", 600: "other"} {
		if got := codeClass(code); got != want {
			t.Errorf("codeClass(%d) = %q, want %q", code, got, want)
		}
	}
}
