package xds

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the control plane's Prometheus series. A nil *metrics is
// valid and records nothing, so the tracker and publisher work without one.
type metrics struct {
	reloads      prometheus.Counter
	reloadErrors prometheus.Counter
	pushes       prometheus.Counter
	snapshotInfo *prometheus.GaugeVec
	connected    prometheus.Gauge
	nacks        *prometheus.CounterVec
	listeners    *prometheus.GaugeVec
	problems     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, p *Publisher) (*metrics, error) {
	m := &metrics{
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certplane_reloads_total",
			Help: "Reloads of the certificate and config directories.",
		}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certplane_reload_errors_total",
			Help: "Reloads that found at least one error (a problem in a file, or a snapshot not published).",
		}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certplane_snapshot_pushes_total",
			Help: "Snapshots published because their content changed.",
		}),
		snapshotInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certplane_snapshot_version_info",
			Help: "The version (content hash) served per resource type; always 1.",
		}, []string{"type", "version"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certplane_xds_connected_nodes",
			Help: "Distinct xDS nodes with an open stream.",
		}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certplane_xds_nacks_total",
			Help: "Responses rejected by xDS clients, per resource type.",
		}, []string{"type"}),
		listeners: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certplane_listeners",
			Help: "Listeners served, by state: serving (current inputs) or last_good (inputs invalid, last good version served).",
		}, []string{"state"}),
		problems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certplane_problems",
			Help: "Errors found by the last reload.",
		}),
	}
	cs := []prometheus.Collector{m.reloads, m.reloadErrors, m.pushes, m.snapshotInfo, m.connected, m.nacks, m.listeners, m.problems, expiryCollector{p}}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) setConnected(n int) {
	if m != nil {
		m.connected.Set(float64(n))
	}
}

func (m *metrics) nack(typeURL string) {
	if m != nil {
		m.nacks.WithLabelValues(TypeName(typeURL)).Inc()
	}
}

func (m *metrics) reload(res Result, problems int, err error) {
	if m == nil {
		return
	}
	m.reloads.Inc()
	n := problems + len(res.Errors)
	if err != nil {
		n++
	}
	if n > 0 {
		m.reloadErrors.Inc()
	}
	m.problems.Set(float64(n))
	if res.Pushed {
		m.pushes.Inc()
		m.snapshotInfo.Reset()
		for t, v := range res.Versions {
			if _, ours := shortNames[t]; ours {
				m.snapshotInfo.WithLabelValues(TypeName(t), v).Set(1)
			}
		}
	}
	if err == nil {
		m.listeners.WithLabelValues("serving").Set(float64(len(res.Serving)))
		m.listeners.WithLabelValues("last_good").Set(float64(len(res.LastGood)))
	}
}

// expiryCollector reports the seconds left before each served certificate
// expires, computed at scrape time so the gauge never goes stale.
type expiryCollector struct{ p *Publisher }

var expiryDesc = prometheus.NewDesc(
	"certplane_certificate_expiry_seconds",
	"Seconds until the certificate expires (negative once expired), for every certificate served: server and client key pairs and trust store CAs.",
	[]string{"secret", "kind", "subject", "serial"}, nil)

func (expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c expiryCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now().Unix()
	for _, e := range c.p.expiries() {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(e.notAfter-now), e.secret, e.kind, e.subject, e.serial)
	}
}
