package xds

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/envoy"
)

// expiryCheckEvery is how often expiry is re-evaluated between reloads: a
// certificate crosses the threshold with time, not with a file change.
const expiryCheckEvery = time.Minute

// ExpiryWatch logs each certificate or CRL once when it comes within the
// threshold, once when it expires, and once when it is renewed: never again
// on every resync. The proxy uses it too, for what it receives over xDS.
type ExpiryWatch struct {
	threshold time.Duration
	log       *slog.Logger

	mu    sync.Mutex
	state map[string]string // Expiry.Key() -> last state logged
}

// NewExpiryWatch returns a watch that logs to log; threshold <= 0 means
// admin.DefaultExpiryWarning.
func NewExpiryWatch(threshold time.Duration, log *slog.Logger) *ExpiryWatch {
	if threshold <= 0 {
		threshold = admin.DefaultExpiryWarning
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ExpiryWatch{threshold: threshold, log: log, state: map[string]string{}}
}

// Threshold is the warning threshold in force.
func (w *ExpiryWatch) Threshold() time.Duration { return w.threshold }

// Check classifies items at now and logs the state changes since the last
// Check. An item first seen in the ok state is not logged; one that is
// gone is forgotten, so a later return counts as a new crossing.
func (w *ExpiryWatch) Check(now time.Time, items []admin.Expiry) {
	items = slices.Clone(items)
	admin.Classify(items, now, w.threshold)
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := make(map[string]string, len(items))
	for _, it := range items {
		k := it.Key()
		seen[k] = it.State
		prev, known := w.state[k]
		if prev == it.State || (!known && it.State == admin.ExpiryOK) {
			continue
		}
		attrs := []any{"kind", it.Kind, "name", it.Name, "subject", it.Subject, "expires", it.At.UTC().Format(time.RFC3339)}
		if it.File != "" {
			attrs = append(attrs, "file", it.File)
		}
		switch it.State {
		case admin.ExpiryExpiring:
			attrs = append(attrs, "left", humanLeft(it.At.Sub(now)), "threshold", w.threshold.String())
			w.log.Warn(expiringMessage(it.Kind), attrs...)
		case admin.ExpiryExpired:
			w.log.Error(expiredMessage(it.Kind), attrs...)
		default:
			w.log.Info("renewed: no longer within the expiry warning threshold", attrs...)
		}
	}
	w.state = seen
}

func expiringMessage(kind string) string {
	if kind == admin.KindCRL {
		return "CRL nextUpdate is near: publish a fresh CRL before then, or clients of its CA are refused"
	}
	return kind + " certificate expires soon"
}

func expiredMessage(kind string) string {
	switch kind {
	case admin.KindCRL:
		return "CRL nextUpdate has passed: handshakes of its CA's clients fail closed"
	case admin.KindServer:
		return "server certificate has expired: clients refuse it"
	}
	return kind + " certificate has expired"
}

// humanLeft prints a duration in days and hours, as an operator reads it.
func humanLeft(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.Round(time.Minute).String()
}

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
	for _, u := range p.lastGood {
		for _, c := range u.info.listener.Certificates {
			add(admin.Expiry{Kind: admin.KindServer, Name: c.Name, Subject: c.Subject, File: c.File, At: c.NotAfter})
		}
		for _, c := range u.info.clients {
			add(admin.Expiry{Kind: admin.KindClient, Name: c.Name, Subject: c.Subject, File: c.File, At: c.NotAfter})
		}
		for _, ts := range u.info.trust {
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
	SortExpiries(out)
	return out
}

// SortExpiries orders items soonest first, then by kind, name and subject.
func SortExpiries(items []admin.Expiry) {
	slices.SortFunc(items, func(a, b admin.Expiry) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Subject, b.Subject))
	})
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
