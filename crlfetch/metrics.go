package crlfetch

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the fetcher's series, labelled by store and URL.
type metrics struct {
	success    *prometheus.GaugeVec
	nextUpdate *prometheus.GaugeVec
	failures   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certplane_crl_fetch_last_success_timestamp_seconds",
			Help: "When the CRL at url was last fetched and admitted (Unix seconds).",
		}, []string{"store", "url"}),
		nextUpdate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certplane_crl_fetch_next_update_timestamp_seconds",
			Help: "nextUpdate of the last good CRL fetched from url (Unix seconds): after it, its CA's clients fail closed unless a fresh CRL was fetched.",
		}, []string{"store", "url"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certplane_crl_fetch_failures_total",
			Help: "Failed CRL fetches by reason (http, status, too_large, parse, not_admitted, expired, not_yet_valid, older, write, no_state).",
		}, []string{"store", "url", "reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.success, m.nextUpdate, m.failures} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) succeeded(store, url string, at, nextUpdate time.Time) {
	m.success.WithLabelValues(store, url).Set(float64(at.Unix()))
	if !nextUpdate.IsZero() {
		m.nextUpdate.WithLabelValues(store, url).Set(float64(nextUpdate.Unix()))
	}
}

func (m *metrics) failed(store, url, reason string) {
	m.failures.WithLabelValues(store, url, reason).Inc()
}

func (m *metrics) forget(store, url string) {
	m.success.DeleteLabelValues(store, url)
	m.nextUpdate.DeleteLabelValues(store, url)
	m.failures.DeletePartialMatch(prometheus.Labels{"store": store, "url": url})
}
