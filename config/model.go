// Package config owns certplane's model: the YAML schema users write, the
// certificate directory they fill, and the validation that stands between
// both and any data plane. Load reads both trees and returns an immutable
// Model holding only what is valid, plus every Problem found, each naming the
// file and what is wrong. config never logs and imports neither envoy nor xds.
package config

import (
	"crypto"
	"crypto/x509"
	"math/big"
	"time"

	"github.com/certplane/certplane/internal/rope"
)

// Model is one consistent, validated view of the config and certificate
// directories. It is never mutated after Load returns: share it freely.
//
// Listeners holds only listeners whose every input is valid. A listener that
// has a problem is absent here and named in Problems (Problem.Listener), so
// the publisher can keep serving its last good version.
type Model struct {
	Listeners []*Listener            // sorted by name; valid ones only
	Backends  map[string]*Backend    // by name; valid ones only
	Servers   map[string]*KeyPair    // certs/server/<name>, valid ones only
	Clients   map[string]*KeyPair    // certs/client/<name>, valid ones only
	Trust     map[string]*TrustStore // certs/trust/<store>, valid ones only
	Problems  []Problem              // errors: each blocks the listeners it names
	Warnings  []Problem              // served anyway, but worth an operator's look
	// Sources maps every listener name that was defined by a config file
	// that parsed, to that file, including listeners with problems. A config
	// file that failed to parse appears in Problems with Listener "" and its
	// File set: the publisher keeps the last good listeners from that file.
	Sources map[string]string
	// CRLFetch is the crl_fetch setting of each trust store that has one,
	// by store name (config file trust_stores section).
	CRLFetch []*CRLFetch
}

// Problem is one error or warning, always naming a file.
type Problem struct {
	File     string // absolute or as given under the watched root; never empty
	Line     int    // 1-based line in File when known, else 0
	Listener string // the listener this blocks, "" when it is file-wide
	Err      error  // wrapped; its text names the file and the defect
}

func (p Problem) Error() string { return p.Err.Error() }

// Listener is one HTTPS listener.
type Listener struct {
	Name    string // [a-z0-9-]+, unique across files
	Address string // host:port as written (host may be an IP or 0.0.0.0/::)
	Host    string // IP literal
	Port    uint32
	// ServerNames restricts the listener to clients that send one of these
	// TLS server names (SNI): lower-case DNS names or one-label wildcards
	// "*.example.com" (which, as in Envoy, match any deeper name too).
	// Empty: any name; on a shared address, the clients no other listener
	// claims (config/sharedaddr.go).
	ServerNames []string
	// SharedAddress is set when other listeners have exactly this address:
	// the data planes serve them on one socket and choose by SNI.
	SharedAddress bool
	// PeerServerNames are the server_names of the other listeners on the
	// address, sorted. A request on this listener whose Host is one of them
	// is answered 421 Misdirected Request (domain fronting).
	PeerServerNames   []string
	Certificates      []string // names under certs/server; [0] is the default
	TLS               TLSPolicy
	HTTP2             bool
	HTTP              HTTPPolicy
	ClientAuth        ClientAuth
	ClientCertHeaders []ClientCertHeader
	// XFCC is how x-forwarded-client-cert is built when ClientCertHeaders
	// holds HeaderXFCC (config/xfcc.go); the zero value otherwise.
	XFCC       XFCC
	Routes     []Route
	SourceFile string
	// Fingerprint is a SHA-256 of the listener and of everything it
	// translates from: its server certificates, trust store, and the
	// backends of its routes (with their trust stores and client
	// certificates). Equal fingerprints, equal resources: the publisher
	// may skip re-translating the listener.
	Fingerprint string
}

// TLSPolicy is the resolved TLS policy: versions and cipher suites in
// OpenSSL/BoringSSL names, as Envoy's tls_params takes them.
type TLSPolicy struct {
	Name         TLSPolicyName
	MinVersion   TLSVersion
	MaxVersion   TLSVersion
	CipherSuites []string
}

// HTTPPolicy is how a listener treats the HTTP requests it accepts.
type HTTPPolicy struct {
	// HeadersWithUnderscores is never "allow": WSGI/CGI backends read
	// X_Forwarded_Client_Cert as X-Forwarded-Client-Cert, so such names
	// must never reach them.
	HeadersWithUnderscores UnderscoresAction
}

// ClientAuth is the client certificate policy of a listener.
type ClientAuth struct {
	Mode              ClientAuthMode
	TrustStore        string // certs/trust/<name>; required for optional and verify
	CRL               CRLScope
	AllowExpired      bool
	MaxVerifyDepth    *uint32
	CertificateHashes []string // lower-case hex sha256 of DER, no colons
	SPKIHashes        []string // base64 sha256 of SPKI
	AdvertiseCANames  bool     // default true
	SubjectAltNames   []SANMatcher
	// Subjects, when set, admits only clients whose verified certificate
	// matches one entry; others get 403 on every route (Envoy's RBAC).
	Subjects []IdentityMatcher
	OCSP     OCSP // client_auth.ocsp (ocsp.go); the bundled proxy alone enforces it
}

// SANMatcher is one entry of the subject-alt-name allow-list. Exactly one of
// Exact, Prefix, Suffix, Contains, Regex is set.
type SANMatcher struct {
	Type     SANType
	Exact    string
	Prefix   string
	Suffix   string
	Contains string
	Regex    string // RE2 syntax
}

// Route sends the requests it matches to a backend. A request takes the
// first route, in the order written, whose host, path and headers all match
// (docs/resources.md, "Virtual hosts"). Exactly one of Path and PathPrefix
// is set. The zero values of the optional fields are today's defaults, so a
// Route{PathPrefix, Backend} literal means what it always meant.
type Route struct {
	Host       string // "" for every host; else a lower-case DNS name or "*." + one
	Path       string // exact path
	PathPrefix string
	Headers    []HeaderMatch // all must match
	Backend    string
	// Timeout bounds the upstream answer (Envoy's route timeout); nil is
	// RouteTimeoutDefault, 0 disables it.
	Timeout *time.Duration
	// IdleTimeout overrides the listener's stream idle timeout for this
	// route; nil keeps it, 0 disables it.
	IdleTimeout *time.Duration
	// Retries is the retry policy; nil is DefaultRetries (one retry on
	// connect failure, to another host).
	Retries *RetryPolicy
	// Allow, when set, admits only clients whose verified certificate
	// matches one entry; others get 403 (config/authz.go).
	Allow []IdentityMatcher
}

// HeaderMatch is one request header the route needs, compared exactly
// (all values of a repeated header joined with ",", as Envoy does).
type HeaderMatch struct {
	Name  string // lower case; :method is the one pseudo-header allowed
	Exact string
}

// RetryPolicy is when and how often a route retries on another host.
type RetryPolicy struct {
	Attempts uint32    // retries after the first try (Envoy num_retries); 0: none
	On       []RetryOn // in the order written
}

// Backend is a set of upstream endpoints balanced round robin.
type Backend struct {
	Name        string
	Endpoints   []Endpoint
	LBPolicy    LBPolicy     // how a request picks an endpoint; zero: round robin
	HealthCheck *HealthCheck // nil: no active health checking
	TLS         *UpstreamTLS // nil: plain HTTP to the endpoints
	SourceFile  string
	// Fingerprint is a SHA-256 of the backend and of the trust store and
	// client certificate its TLS uses.
	Fingerprint string
}

// Endpoint is one upstream host:port. Host is an IP literal or a DNS name.
type Endpoint struct {
	Host string
	Port uint32
}

// IsIP reports whether the endpoint host is an IP literal.
func (e Endpoint) IsIP() bool { return isIP(e.Host) }

// HealthCheck is an active HTTP health check with Envoy's semantics.
type HealthCheck struct {
	Path               string
	Interval           time.Duration
	Timeout            time.Duration
	HealthyThreshold   uint32
	UnhealthyThreshold uint32
}

// UpstreamTLS is HTTPS (or mTLS when Certificate is set) to the endpoints.
type UpstreamTLS struct {
	TrustStore  string // certs/trust/<name>; "" means the system pool is not used: required
	Certificate string // certs/client/<name>; "" for no client certificate
	SNI         string
}

// KeyPair is a certificate chain (leaf first) with its private key.
type KeyPair struct {
	Name     string
	Chain    []*x509.Certificate
	Key      crypto.Signer
	ChainPEM []byte // leaf then intermediates, normalised PEM
	KeyPEM   []byte // PKCS#8 PEM; never log it
	CertFile string
	KeyFile  string
	// Fingerprint is a SHA-256 of ChainPEM and KeyPEM: equal fingerprints,
	// equal Secret.
	Fingerprint string
}

// TrustStore is a bundle of CA certificates and the CRLs issued by them.
type TrustStore struct {
	Name string
	CAs  []*x509.Certificate
	// CRLs summarises the CRLs served, in CRLPEM order. A CRL is never kept
	// parsed: its entries live only in CRLPEM, the bytes sent.
	CRLs  []CRL
	CAPEM []byte // every CA, PEM, in file then document order
	// CRLPEM is every CRL, PEM, one chunk per CRL, not joined (see
	// package rope); nil when the store has none.
	CRLPEM *rope.Rope
	Files  []string // the files it was read from
	// Fingerprint is a SHA-256 of everything served from the store (CAPEM
	// and CRLPEM): equal fingerprints, equal Secret.
	Fingerprint string
}

// CRL is what the model keeps of an admitted CRL: who issued it, where it
// stands in its issuer's sequence, and how big it is. Its signature was
// checked against a CA of the store at admission (crl.Admit).
type CRL struct {
	Issuer     string // pkix.Name.String form
	RawIssuer  []byte // DER Name: matches the issuing CA's RawSubject
	Number     *big.Int
	ThisUpdate time.Time
	NextUpdate time.Time // zero: absent
	Revoked    int       // entries listed
	SHA256     [32]byte  // of the DER
	File       string    // where it was admitted from (a state file when remembered)
}

// The loader's entry points (implemented in load.go):
//
//	func Load(certsDir, configDir string) (*Model, error)
//
// Load reads both trees from scratch. Its error is non-nil only when a
// directory cannot be read at all; every defect of a file is a Problem in the
// returned Model, which always holds whatever is valid.
