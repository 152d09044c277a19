package status

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// DefaultExpiryWarning is how long before a certificate expires, or a CRL's
// nextUpdate passes, that it is reported as expiring: 30 days, the lead time
// most CAs give before renewal is due.
const DefaultExpiryWarning = 30 * 24 * time.Hour

// Expiry kinds: what stops working at Expiry.At.
const (
	KindServer = "server" // a listener's certificate: clients refuse it once expired
	KindClient = "client" // an upstream mTLS certificate: backends refuse it
	KindCA     = "ca"     // a trust store CA: its clients are refused
	KindCRL    = "crl"    // a CRL's nextUpdate: an expired CRL fails closed
)

// Expiry states.
const (
	ExpiryOK       = "ok"
	ExpiryExpiring = "expiring"
	ExpiryExpired  = "expired"
)

// Expiry is one certificate or CRL that stops working at a known time.
type Expiry struct {
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`    // the Secret name: server/x, client/x, trust/x
	Subject string    `json:"subject"` // the certificate's subject, or the CRL's issuer
	File    string    `json:"file,omitempty"`
	At      time.Time `json:"expires"` // NotAfter, or the CRL's nextUpdate
	// SecondsLeft is negative once expired.
	SecondsLeft int64  `json:"seconds_left"`
	State       string `json:"state"`
}

// Key identifies the item across reloads: a renewed certificate keeps its
// key and changes At.
func (e Expiry) Key() string { return e.Kind + "\x00" + e.Name + "\x00" + e.Subject }

// ExpiryState classifies at against now and the warning threshold.
func ExpiryState(at, now time.Time, threshold time.Duration) string {
	switch left := at.Sub(now); {
	case left <= 0:
		return ExpiryExpired
	case left < threshold:
		return ExpiryExpiring
	default:
		return ExpiryOK
	}
}

// Classify fills SecondsLeft and State of each item, in place.
func Classify(items []Expiry, now time.Time, threshold time.Duration) {
	for i := range items {
		items[i].SecondsLeft = int64(items[i].At.Sub(now) / time.Second)
		items[i].State = ExpiryState(items[i].At, now, threshold)
	}
}

// ExpiryCheckEvery is how often expiry is re-evaluated between updates: an
// item crosses the threshold with time, not with a file change.
const ExpiryCheckEvery = time.Minute

// ExpiryWatch logs each certificate or CRL once when it comes within the
// threshold, once when it expires, and once when it is renewed: never again
// on every resync. The control plane watches what it serves, the proxy what it receives.
type ExpiryWatch struct {
	threshold time.Duration
	log       *slog.Logger

	mu    sync.Mutex
	state map[string]string // Expiry.Key() -> last state logged
}

// NewExpiryWatch returns a watch that logs to log; threshold <= 0 means
// DefaultExpiryWarning.
func NewExpiryWatch(threshold time.Duration, log *slog.Logger) *ExpiryWatch {
	if threshold <= 0 {
		threshold = DefaultExpiryWarning
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
func (w *ExpiryWatch) Check(now time.Time, items []Expiry) {
	items = slices.Clone(items)
	Classify(items, now, w.threshold)
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := make(map[string]string, len(items))
	for _, it := range items {
		k := it.Key()
		seen[k] = it.State
		prev, known := w.state[k]
		if prev == it.State || (!known && it.State == ExpiryOK) {
			continue
		}
		attrs := []any{"kind", it.Kind, "name", it.Name, "subject", it.Subject, "expires", it.At.UTC().Format(time.RFC3339)}
		if it.File != "" {
			attrs = append(attrs, "file", it.File)
		}
		switch it.State {
		case ExpiryExpiring:
			attrs = append(attrs, "left", humanLeft(it.At.Sub(now)), "threshold", w.threshold.String())
			w.log.Warn(expiringMessage(it.Kind), attrs...)
		case ExpiryExpired:
			w.log.Error(expiredMessage(it.Kind), attrs...)
		default:
			w.log.Info("renewed: no longer within the expiry warning threshold", attrs...)
		}
	}
	w.state = seen
}

func expiringMessage(kind string) string {
	if kind == KindCRL {
		return "CRL nextUpdate is near: publish a fresh CRL before then, or clients of its CA are refused"
	}
	return kind + " certificate expires soon"
}

func expiredMessage(kind string) string {
	switch kind {
	case KindCRL:
		return "CRL nextUpdate has passed: handshakes of its CA's clients fail closed"
	case KindServer:
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

// SortExpiries orders items soonest first, then by kind, name and subject.
func SortExpiries(items []Expiry) {
	slices.SortFunc(items, func(a, b Expiry) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Subject, b.Subject))
	})
}

// Inventory is what a plane serves, as far as expiry goes. Both planes
// describe what they serve this way and share Expiries, so that the control
// plane's view and the proxy's agree item for item.
type Inventory struct {
	// Servers are the certificates that listeners present, Clients those
	// presented to backends (upstream mTLS); Certificate.Name is the Secret
	// name.
	Servers, Clients []Certificate
	// Stores maps the Secret name that carries a trust store to the store:
	// its CAs and CRLs are reported under that name.
	Stores map[string]*TrustStore
}

// Expiries lists every certificate and CRL of inv that stops working at a
// known time, soonest first. Items with one key (a store shared by
// listeners, two CAs of one subject) are merged, keeping the earliest time,
// so that the key and the metrics' labels stay unique.
func Expiries(inv Inventory) []Expiry {
	byKey := map[string]Expiry{}
	add := func(e Expiry) {
		if cur, ok := byKey[e.Key()]; ok && !e.At.Before(cur.At) {
			return
		}
		byKey[e.Key()] = e
	}
	for _, c := range inv.Servers {
		add(Expiry{Kind: KindServer, Name: c.Name, Subject: c.Subject, File: c.File, At: c.NotAfter})
	}
	for _, c := range inv.Clients {
		add(Expiry{Kind: KindClient, Name: c.Name, Subject: c.Subject, File: c.File, At: c.NotAfter})
	}
	for name, ts := range inv.Stores {
		for _, ca := range ts.CAs {
			add(Expiry{Kind: KindCA, Name: name, Subject: ca.Subject, At: ca.NotAfter})
		}
		for _, crl := range ts.CRLs {
			if !crl.NextUpdate.IsZero() {
				add(Expiry{Kind: KindCRL, Name: name, Subject: crl.Issuer, At: crl.NextUpdate})
			}
		}
	}
	out := make([]Expiry, 0, len(byKey))
	for _, e := range byKey {
		out = append(out, e)
	}
	SortExpiries(out)
	return out
}

// Expiring classifies items at now and returns those within threshold or
// expired, soonest first, as the status's Expiring lists.
func Expiring(items []Expiry, now time.Time, threshold time.Duration) []Expiry {
	items = slices.Clone(items)
	Classify(items, now, threshold)
	out := []Expiry{}
	for _, it := range items {
		if it.State != ExpiryOK {
			out = append(out, it)
		}
	}
	return out
}
