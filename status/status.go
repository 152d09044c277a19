// Package status is the vocabulary that both planes use to say what they
// serve: the /status document, certificates, trust stores, CRL summaries,
// problems and xDS nodes, and the expiry of what is served. It is a leaf:
// it imports no certplane stage, so the control plane, the proxy and the
// admin endpoint can all share it.
package status

import "time"

// Status is the /status document. Each component fills its own section, so
// the proxy can add a section without touching the control plane's.
type Status struct {
	ControlPlane *ControlPlane `json:"control_plane,omitempty"`
	// Proxy is filled by the fallback data plane; any JSON-encodable value.
	Proxy any `json:"proxy,omitempty"`
}

// ControlPlane is what the xDS server serves and to whom.
type ControlPlane struct {
	// Ready is true once a first valid snapshot is being served.
	Ready bool `json:"ready"`
	// Versions maps a resource type ("listeners", "secrets"...) to the
	// content hash currently served.
	Versions   map[string]string `json:"versions"`
	LastReload time.Time         `json:"last_reload,omitzero"`
	// LastPush is when the served snapshot last changed.
	LastPush    time.Time    `json:"last_push,omitzero"`
	Reloads     uint64       `json:"reloads"`
	Listeners   []Listener   `json:"listeners"`
	TrustStores []TrustStore `json:"trust_stores"`
	// ClientCertificates are the upstream mTLS key pairs being served.
	ClientCertificates []Certificate `json:"client_certificates"`
	Errors             []Problem     `json:"errors"`
	Warnings           []Problem     `json:"warnings"`
	Nodes              []Node        `json:"nodes"`
	// ExpiryWarningSeconds is the threshold under which Expiring lists an
	// item (--expiry-warning).
	ExpiryWarningSeconds int64 `json:"expiry_warning_seconds,omitempty"`
	// Expiring lists the served certificates and CRLs that expire within the
	// threshold or have expired, soonest first.
	Expiring []Expiry `json:"expiring"`
	// CRLFetch lists the CRL distribution points fetched (crlfetch.go).
	CRLFetch []CRLFetch `json:"crl_fetch,omitempty"`
}

// Listener is one listener as served.
type Listener struct {
	Name       string `json:"name"`
	Address    string `json:"address"`
	SourceFile string `json:"source_file"`
	// State is "serving" (current inputs) or "last_good" (its current inputs
	// are invalid; the last good version is still served).
	State        string        `json:"state"`
	ClientAuth   string        `json:"client_auth"`
	TrustStore   string        `json:"trust_store,omitempty"`
	Certificates []Certificate `json:"certificates"`
	Backends     []string      `json:"backends"`
}

// Listener states.
const (
	StateServing  = "serving"
	StateLastGood = "last_good"
)

// Certificate describes one certificate; never its key.
type Certificate struct {
	Name      string    `json:"name,omitempty"` // the Secret name, for leaves
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"` // hex
	DNSNames  []string  `json:"dns_names,omitempty"`
	IPs       []string  `json:"ips,omitempty"`
	URIs      []string  `json:"uris,omitempty"`
	Emails    []string  `json:"emails,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	File      string    `json:"file,omitempty"`
}

// TrustStore is one CA bundle with its CRLs.
type TrustStore struct {
	Name    string        `json:"name"`
	State   string        `json:"state"` // as Listener.State
	CACount int           `json:"ca_count"`
	CAs     []Certificate `json:"cas"`
	CRLs    []CRL         `json:"crls"`
	Files   []string      `json:"files"`
}

// CRL is one revocation list of a trust store: a summary, because neither
// plane keeps CRLs parsed once admitted.
type CRL struct {
	Issuer     string    `json:"issuer"`
	Number     string    `json:"number,omitempty"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	Revoked    int       `json:"revoked"`
	// SHA256 is the hex digest of the CRL's DER, when known.
	SHA256 string `json:"sha256,omitempty"`
}

// Problem is one current error or warning, naming its file.
type Problem struct {
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Listener string `json:"listener,omitempty"`
	Reason   string `json:"reason"`
	// LastGoodServed is true when the listener this blocks (or, for a config
	// file that failed to parse, some listener it defined) is still being
	// served from its last good version.
	LastGoodServed bool `json:"last_good_served"`
}

// Node is one connected xDS client.
type Node struct {
	ID        string    `json:"id"`
	Cluster   string    `json:"cluster,omitempty"`
	Peer      string    `json:"peer,omitempty"`
	Streams   int       `json:"streams"`
	Connected time.Time `json:"connected"`
	// Types maps a resource type ("listeners", "secrets"...) to its state.
	Types map[string]TypeState `json:"types"`
}

// TypeState is what one node did with one resource type.
type TypeState struct {
	LastSent   string    `json:"last_sent,omitempty"`
	LastACKed  string    `json:"last_acked,omitempty"`
	LastNACKed string    `json:"last_nacked,omitempty"`
	NACKDetail string    `json:"nack_detail,omitempty"`
	NACKedAt   time.Time `json:"nacked_at,omitzero"`
	NACKs      uint64    `json:"nacks"`
}
