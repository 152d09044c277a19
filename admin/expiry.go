package admin

import "time"

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
