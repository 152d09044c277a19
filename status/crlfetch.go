package status

import "time"

// CRLFetch is one CRL distribution point the control plane fetches
// (trust_stores[].crl_fetch): a row of /status and of the status page.
type CRLFetch struct {
	Store string `json:"store"`
	URL   string `json:"url"`
	// State is "ok" (the last fetch succeeded), "pending" (not fetched
	// yet), "failing" (the last fetch failed; the last good CRL is served
	// until its nextUpdate) or "stale" (failing and the last good CRL's
	// nextUpdate has passed: that CA's clients fail closed).
	State       string    `json:"state"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	NextFetch   time.Time `json:"next_fetch,omitzero"`
	// LastError and LastReason describe the last failure while it lasts.
	LastError  string `json:"last_error,omitempty"`
	LastReason string `json:"last_reason,omitempty"`
	// Failures counts failed fetches by reason since start.
	Failures map[string]uint64 `json:"failures,omitempty"`
	// The last good CRL fetched from URL.
	Issuer     string    `json:"issuer,omitempty"`
	Number     string    `json:"number,omitempty"`
	NextUpdate time.Time `json:"next_update,omitzero"`
	File       string    `json:"file,omitempty"`
}
