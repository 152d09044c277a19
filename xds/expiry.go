package xds

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/envoy"
)

// expiryItems lists every certificate and CRL served, with the file it came
// from where known. Duplicates (a store shared by listeners) are merged,
// keeping the earliest time.
func (p *Publisher) expiryItems() []admin.Expiry {
	p.mu.Lock()
	defer p.mu.Unlock()
	byKey := map[string]admin.Expiry{}
	add := func(e admin.Expiry) {
		if cur, ok := byKey[e.Key()]; ok && !e.At.Before(cur.At) {
			return
		}
		byKey[e.Key()] = e
	}
	seenStores := map[*admin.TrustStore]bool{}
	for _, u := range p.lastGood {
		for _, c := range u.info.listener.Certificates {
			add(admin.Expiry{Kind: admin.KindServer, Name: c.Name, Subject: c.Subject, File: c.File, At: c.NotAfter})
		}
		for _, c := range u.info.clients {
			add(admin.Expiry{Kind: admin.KindClient, Name: c.Name, Subject: c.Subject, File: c.File, At: c.NotAfter})
		}
		for _, ts := range u.info.trust {
			if seenStores[ts] {
				continue // shared by the units of one update: walk it once
			}
			seenStores[ts] = true
			name := envoy.TrustSecretName(ts.Name)
			for _, ca := range ts.CAs {
				add(admin.Expiry{Kind: admin.KindCA, Name: name, Subject: ca.Subject, At: ca.NotAfter})
			}
			for _, crl := range ts.CRLs {
				if !crl.NextUpdate.IsZero() {
					add(admin.Expiry{Kind: admin.KindCRL, Name: name, Subject: crl.Issuer, At: crl.NextUpdate})
				}
			}
		}
	}
	out := make([]admin.Expiry, 0, len(byKey))
	for _, e := range byKey {
		out = append(out, e)
	}
	admin.SortExpiries(out)
	return out
}

// checkExpiry logs the threshold crossings of what is served now.
func (cp *ControlPlane) checkExpiry() {
	cp.expiry.Check(time.Now(), cp.pub.expiryItems())
}

// expiryStatus adds to st the items within the threshold, and an error for
// each expired server certificate: clients refuse it, so the listener is
// down for them whatever else is right.
func (cp *ControlPlane) expiryStatus(st *admin.ControlPlane, now time.Time) {
	items := cp.pub.expiryItems()
	admin.Classify(items, now, cp.expiry.Threshold())
	st.ExpiryWarningSeconds = int64(cp.expiry.Threshold() / time.Second)
	st.Expiring = []admin.Expiry{}
	for _, it := range items {
		if it.State == admin.ExpiryOK {
			continue
		}
		st.Expiring = append(st.Expiring, it)
		if it.Kind != admin.KindServer || it.State != admin.ExpiryExpired {
			continue
		}
		for _, l := range st.Listeners {
			for _, c := range l.Certificates {
				if c.Name == it.Name && c.Subject == it.Subject {
					st.Errors = append(st.Errors, admin.Problem{
						File:     it.File,
						Listener: l.Name,
						Reason: fmt.Sprintf("%s: served certificate %s expired on %s: clients refuse it; renew it",
							it.File, it.Subject, it.At.UTC().Format(time.RFC3339)),
					})
				}
			}
		}
	}
}

// expiringCollector reports, at scrape time, whether each served item is
// within the threshold (or expired), and the seconds left before each CRL's
// nextUpdate. Certificates' seconds left are certplane_certificate_expiry_seconds.
type expiringCollector struct {
	p         *Publisher
	threshold time.Duration
}

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
	for _, e := range c.p.expiryItems() {
		v := 0.0
		if admin.ExpiryState(e.At, now, c.threshold) != admin.ExpiryOK {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(expiringDesc, prometheus.GaugeValue, v, e.Kind, e.Name, e.Subject)
		if e.Kind == admin.KindCRL {
			ch <- prometheus.MustNewConstMetric(crlNextUpdateDesc, prometheus.GaugeValue, e.At.Sub(now).Seconds(), e.Name, e.Subject)
		}
	}
}
