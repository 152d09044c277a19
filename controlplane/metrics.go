package controlplane

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/status"
	"github.com/certplane/certplane/xds"
)

// metrics are the reload loop's Prometheus series. The expiry series are
// collectors computed at scrape time from what is served, so they never
// go stale between reloads.
type metrics struct {
	reloads      prometheus.Counter
	reloadErrors prometheus.Counter
	pushes       prometheus.Counter
	snapshotInfo *prometheus.GaugeVec
	listeners    *prometheus.GaugeVec
	problems     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, r *Runner) (*metrics, error) {
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
		listeners: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certplane_listeners",
			Help: "Listeners served, by state: serving (current inputs) or last_good (inputs invalid, last good version served).",
		}, []string{"state"}),
		problems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certplane_problems",
			Help: "Errors found by the last reload.",
		}),
	}
	cs := []prometheus.Collector{m.reloads, m.reloadErrors, m.pushes, m.snapshotInfo, m.listeners, m.problems,
		certExpiryCollector{r}, expiringCollector{r}}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) reload(res xds.Result, problems int, err error) {
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
		for _, t := range xds.EmittedTypes() {
			if v, ok := res.Versions[t]; ok {
				m.snapshotInfo.WithLabelValues(xds.TypeName(t), v).Set(1)
			}
		}
	}
	if err == nil {
		m.listeners.WithLabelValues("serving").Set(float64(len(res.Serving)))
		m.listeners.WithLabelValues("last_good").Set(float64(len(res.LastGood)))
	}
}

// certExpiryCollector reports the seconds left before each served
// certificate expires.
type certExpiryCollector struct{ r *Runner }

var expiryDesc = prometheus.NewDesc(
	"certplane_certificate_expiry_seconds",
	"Seconds until the certificate expires (negative once expired), for every certificate served: server and client key pairs and trust store CAs.",
	[]string{"secret", "kind", "subject", "serial"}, nil)

func (certExpiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c certExpiryCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	type key struct{ secret, kind, subject, serial string }
	earliest := map[key]time.Time{}
	add := func(secret, kind string, cs ...status.Certificate) {
		for _, cert := range cs {
			k := key{secret, kind, cert.Subject, cert.Serial}
			if secret == "" {
				k.secret = cert.Name
			}
			if at, ok := earliest[k]; !ok || cert.NotAfter.Before(at) {
				earliest[k] = cert.NotAfter
			}
		}
	}
	s := c.r.pub.Served()
	seen := map[*status.TrustStore]bool{}
	for _, l := range s.Listeners {
		add("", "server", l.Listener.Certificates...)
		for _, cert := range l.Clients {
			add("", "client", cert)
		}
		for _, ts := range l.Trust {
			if !seen[ts] { // shared by the listeners of one reload: walk it once
				seen[ts] = true
				add(envoy.TrustSecretName(ts.Name), "ca", ts.CAs...)
			}
		}
	}
	for k, at := range earliest {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(at.Unix()-now.Unix()), k.secret, k.kind, k.subject, k.serial)
	}
}

// expiringCollector reports whether each served item is within the
// threshold (or expired), and the seconds left before each CRL's
// nextUpdate.
type expiringCollector struct{ r *Runner }

var (
	expiringDesc = prometheus.NewDesc(
		"certplane_expiring_soon",
		"1 when a served certificate expires, or a CRL's nextUpdate passes, within the --expiry-warning threshold (or already has); else 0.",
		[]string{"kind", "name", "subject"}, nil)
	crlNextUpdateDesc = prometheus.NewDesc(
		"certplane_crl_next_update_seconds",
		"Seconds until a served CRL's nextUpdate (negative once passed: handshakes of its CA's clients fail closed).",
		[]string{"name", "issuer"}, nil)
)

func (expiringCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- expiringDesc
	ch <- crlNextUpdateDesc
}

func (c expiringCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, e := range status.Expiries(c.r.pub.Served().Inventory()) {
		v := 0.0
		if status.ExpiryState(e.At, now, c.r.expiry.Threshold()) != status.ExpiryOK {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(expiringDesc, prometheus.GaugeValue, v, e.Kind, e.Name, e.Subject)
		if e.Kind == status.KindCRL {
			ch <- prometheus.MustNewConstMetric(crlNextUpdateDesc, prometheus.GaugeValue, e.At.Sub(now).Seconds(), e.Name, e.Subject)
		}
	}
}
