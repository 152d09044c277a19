package xds

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the xDS server's Prometheus series. A nil *metrics is valid
// and records nothing, so the tracker works without one.
type metrics struct {
	connected prometheus.Gauge
	nacks     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certplane_xds_connected_nodes",
			Help: "Distinct xDS nodes with an open stream.",
		}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certplane_xds_nacks_total",
			Help: "Responses rejected by xDS clients, per resource type.",
		}, []string{"type"}),
	}
	for _, c := range []prometheus.Collector{m.connected, m.nacks} {
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
