package proxy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus series, on its own registry.
type metrics struct {
	handshakes      *prometheus.CounterVec
	requests        *prometheus.CounterVec
	closedByRecheck *prometheus.CounterVec
	xdsConnected    prometheus.Gauge
	// Envoy's dropped_headers_with_underscores and
	// requests_rejected_with_underscores_in_headers.
	underscoreDropped  *prometheus.CounterVec
	underscoreRejected *prometheus.CounterVec
	// rbacDenied is Envoy's http.<listener>.rbac.denied, by route too.
	rbacDenied *prometheus.CounterVec
	// requestDuration is Envoy's http.<listener>.downstream_rq_time,
	// upstreamDuration its cluster.<name>.upstream_rq_time; both by
	// listener, route, cluster and code class.
	requestDuration  *prometheus.HistogramVec
	upstreamDuration *prometheus.HistogramVec
}

// durationBuckets span a cached answer (0.5 ms) to a slow upload (60 s, the
// default route timeout).
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// codeClass is a status code's class label: "2xx" ... "5xx".
func codeClass(code int) string {
	switch {
	case code >= 100 && code < 600:
		return [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}[code/100-1]
	default:
		return "other"
	}
}

func newMetrics(reg prometheus.Registerer, p *Proxy) *metrics {
	m := &metrics{
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certplane_proxy_handshakes_total",
			Help: "TLS handshakes by listener, result (ok|fail) and failure reason.",
		}, []string{"listener", "result", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certplane_proxy_requests_total",
			Help: "HTTP requests by listener, upstream cluster, upstream host and status code.",
		}, []string{"listener", "cluster", "host", "code"}),
		closedByRecheck: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certplane_proxy_connections_closed_by_recheck_total",
			Help: "Open connections closed because their client certificate stopped verifying after a trust or CRL update.",
		}, []string{"listener", "reason"}),
		xdsConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certplane_proxy_xds_connected",
			Help: "1 while the ADS stream to the control plane is up.",
		}),
		underscoreDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certplane_proxy_dropped_headers_with_underscores_total",
			Help: "Request headers dropped because their name has an underscore (headers_with_underscores_action DROP_HEADER).",
		}, []string{"listener"}),
		underscoreRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certplane_proxy_requests_rejected_with_underscores_in_headers_total",
			Help: "Requests refused with 400 because a header name has an underscore (headers_with_underscores_action REJECT_REQUEST).",
		}, []string{"listener"}),
		rbacDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certplane_proxy_rbac_denied_total",
			Help: "Requests refused with 403 by the RBAC filter (route allow lists, client_auth.subjects), by listener and route (its name, else its path prefix; empty when no route matched).",
		}, []string{"listener", "route"}),
	}
	labels := []string{"listener", "route", "cluster", "code_class"}
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "certplane_proxy_request_duration_seconds",
		Help:    "Downstream request time, from the request's arrival to the last byte of the response, by listener, route (name, else path or prefix), upstream cluster and status code class.",
		Buckets: durationBuckets,
	}, labels)
	m.upstreamDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "certplane_proxy_upstream_duration_seconds",
		Help:    "Upstream request time, from the first upstream attempt (retries included) to the last byte of the response, for requests that reached an upstream; labels as certplane_proxy_request_duration_seconds.",
		Buckets: durationBuckets,
	}, labels)
	reg.MustRegister(m.handshakes, m.requests, m.closedByRecheck, m.xdsConnected, m.underscoreDropped, m.underscoreRejected, m.rbacDenied,
		m.requestDuration, m.upstreamDuration, &stateCollector{p: p})
	return m
}

var (
	descEndpointHealthy = prometheus.NewDesc("certplane_proxy_endpoint_healthy",
		"1 when the endpoint receives traffic (active health check passing and not ejected by outlier detection).",
		[]string{"cluster", "host"}, nil)
	descCertExpiry = prometheus.NewDesc("certplane_proxy_certificate_expiry_seconds",
		"Seconds until the certificate of an SDS key-pair secret expires (negative once expired).",
		[]string{"secret"}, nil)
	descCRLExpiry = prometheus.NewDesc("certplane_proxy_crl_next_update_seconds",
		"Seconds until the earliest next_update of the CRLs of an SDS validation-context secret (negative once stale: handshakes fail closed).",
		[]string{"secret"}, nil)
	descListenerConns = prometheus.NewDesc("certplane_proxy_listener_connections",
		"Open downstream connections per listener.", []string{"listener"}, nil)
	descWarming = prometheus.NewDesc("certplane_proxy_listener_warming",
		"1 while a listener waits for resources it references.", []string{"listener"}, nil)
)

// stateCollector reads the current state at scrape time, so series of
// removed hosts and secrets disappear with them.
type stateCollector struct{ p *Proxy }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEndpointHealthy
	ch <- descCertExpiry
	ch <- descCRLExpiry
	ch <- descListenerConns
	ch <- descWarming
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.state.Load()
	now := time.Now()
	for _, cl := range st.clusters {
		for _, h := range cl.hosts {
			v := 0.0
			if h.usable(now) {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descEndpointHealthy, prometheus.GaugeValue, v, cl.name, h.addr)
		}
	}
	for name, s := range st.secrets {
		certExp, crlExp := s.expiry()
		if !certExp.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, certExp.Sub(now).Seconds(), name)
		}
		if !crlExp.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCRLExpiry, prometheus.GaugeValue, crlExp.Sub(now).Seconds(), name)
		}
	}
	for name := range st.warming {
		ch <- prometheus.MustNewConstMetric(descWarming, prometheus.GaugeValue, 1, name)
	}
	for name, n := range c.p.connCounts() {
		ch <- prometheus.MustNewConstMetric(descListenerConns, prometheus.GaugeValue, float64(n), name)
	}
}
