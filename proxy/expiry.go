package proxy

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certplane/certplane/status"
)

// watchExpiry re-evaluates expiry every status.ExpiryCheckEvery until ctx
// ends: an item crosses the threshold with time, not with an update.
func (p *Proxy) watchExpiry(ctx context.Context) {
	t := time.NewTicker(status.ExpiryCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.checkExpiry(now)
		}
	}
}

// checkExpiry logs the threshold crossings of what the proxy serves now.
func (p *Proxy) checkExpiry(now time.Time) {
	p.expiry.Check(now, status.Expiries(inventory(p.state.Load())))
}

var descExpiringSoon = prometheus.NewDesc("certplane_proxy_expiring_soon",
	"1 when a certificate or a CRL's nextUpdate received over SDS is within the --expiry-warning threshold (or past it); else 0.",
	[]string{"kind", "name", "subject"}, nil)

// expiringCollector computes certplane_proxy_expiring_soon at scrape time,
// so it never goes stale between updates.
type expiringCollector struct{ p *Proxy }

func (expiringCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descExpiringSoon }

func (c expiringCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, e := range status.Expiries(inventory(c.p.state.Load())) {
		v := 0.0
		if status.ExpiryState(e.At, now, c.p.expiry.Threshold()) != status.ExpiryOK {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descExpiringSoon, prometheus.GaugeValue, v, e.Kind, e.Name, e.Subject)
	}
}
