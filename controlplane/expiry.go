package controlplane

import (
	"fmt"
	"time"

	"github.com/certplane/certplane/status"
)

// checkExpiry logs the threshold crossings of what is served now.
func (r *Runner) checkExpiry() {
	r.expiry.Check(time.Now(), status.Expiries(r.pub.Served().Inventory()))
}

// expiryStatus adds to st the items within threshold, and an error for
// each expired server certificate: clients refuse it, so the listener is
// down for them whatever else is right.
func expiryStatus(st *status.ControlPlane, items []status.Expiry, now time.Time, threshold time.Duration) {
	st.ExpiryWarningSeconds = int64(threshold / time.Second)
	st.Expiring = status.Expiring(items, now, threshold)
	for _, it := range st.Expiring {
		if it.Kind != status.KindServer || it.State != status.ExpiryExpired {
			continue
		}
		for _, l := range st.Listeners {
			for _, c := range l.Certificates {
				if c.Name == it.Name && c.Subject == it.Subject {
					st.Errors = append(st.Errors, status.Problem{
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
