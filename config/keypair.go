package config

import (
	"crypto/x509"
	"fmt"
	"io/fs"
	"time"

	"github.com/certplane/certplane/pemder"
)

// FileError is a defect of one file, at a line when known. Every error the
// loader reports is, or wraps, a FileError.
type FileError struct {
	File string
	Line int // 1-based; 0 when not about one line
	Err  error
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

func fileErr(file string, err error) error { return &FileError{File: file, Err: err} }

func lineErr(file string, line int, err error) error {
	return &FileError{File: file, Line: line, Err: err}
}

// Loader reads and validates the certificate and config directories. The
// zero value is ready to use; the fields exist for tests and tools.
type Loader struct {
	Now         func() time.Time // default time.Now
	MaxFileSize int64            // per file; default DefaultMaxFileSize
	// MaxTrustFileSize bounds trust-store files (CA bundles and CRLs);
	// default DefaultMaxTrustFileSize.
	MaxTrustFileSize int64
	// MaxTrustStoreSize bounds the total size of one trust store's files,
	// checked before any is read; default DefaultMaxTrustStoreSize.
	MaxTrustStoreSize int64
	ExpiryWarning     time.Duration // warn when a certificate expires sooner; default 30 days
	// Trust remembers trust material from one load to the next: each trust
	// file's last good content and each CA's newest CRL. Nil: every load
	// stands alone (certplane check). A long-running loader sets it.
	Trust *TrustMemory
	// Cache keeps what each file parsed to, so that a reload parses only
	// the files that changed. Nil: Trust's cache when Trust is set,
	// otherwise every load parses everything.
	Cache *ParseCache
	// AdminAddresses are the admin endpoints (host:port) the data plane
	// runs: a backend endpoint on one is a warning (config/loops.go).
	AdminAddresses []string
	// FetchedDir holds the CRLs crlfetch fetched, FetchedDir/<store>/*.crl
	// (FetchedCRLDir of the state directory): each store reads its own as
	// more CRL files. Empty: none.
	FetchedDir string
	// ProxyOnly says only certplane proxies consume what is served (the
	// proxy's standalone mode, serve --data-plane proxy): listeners with
	// client_auth.ocsp require are served, which Envoy cannot enforce.
	ProxyOnly bool
}

func (l Loader) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l Loader) maxFileSize() int64 {
	if l.MaxFileSize > 0 {
		return l.MaxFileSize
	}
	return DefaultMaxFileSize
}

func (l Loader) maxTrustFileSize() int64 {
	if l.MaxTrustFileSize > 0 {
		return l.MaxTrustFileSize
	}
	return DefaultMaxTrustFileSize
}

func (l Loader) maxTrustStoreSize() int64 {
	if l.MaxTrustStoreSize > 0 {
		return l.MaxTrustStoreSize
	}
	return DefaultMaxTrustStoreSize
}

func (l Loader) expiryWarning() time.Duration {
	if l.ExpiryWarning > 0 {
		return l.ExpiryWarning
	}
	return 30 * 24 * time.Hour
}

// Roles of a key pair: what it proves in a handshake.
const (
	RoleServer = "server"
	RoleClient = "client"
)

// ParseKeyPair parses and validates a certificate chain (leaf first) and its
// private key with the current time. See Loader.ParseKeyPair.
func ParseKeyPair(role, name, certFile string, certPEM []byte, keyFile string, keyPEM []byte) (*KeyPair, []Problem, error) {
	return Loader{}.ParseKeyPair(role, name, certFile, certPEM, keyFile, keyPEM)
}

// ParseKeyPair parses certPEM (leaf then intermediates) and keyPEM (PKCS#8,
// PKCS#1 or SEC1) and checks them as a TLS peer would: the key matches the
// leaf, the chain is in order, nothing is expired or not yet valid, no
// certificate but a root is signed with SHA-1 or MD5, keys are strong
// enough. role is RoleServer or RoleClient. The warnings returned (a
// certificate about to expire) do not block use. Errors name the file.
func (l Loader) ParseKeyPair(role, name, certFile string, certPEM []byte, keyFile string, keyPEM []byte) (*KeyPair, []Problem, error) {
	return l.parseKeyPair(role, name, certFile, certPEM, nil, keyFile, keyPEM, nil)
}

// parseKeyPair is ParseKeyPair with the files' identities: the parse of
// each file comes from the parse cache when its content was seen before.
func (l Loader) parseKeyPair(role, name, certFile string, certPEM []byte, certInfo fs.FileInfo, keyFile string, keyPEM []byte, keyInfo fs.FileInfo) (*KeyPair, []Problem, error) {
	now := l.now()
	cp := lookup(l.cache(), certFile, certPEM, certInfo, func() certParse {
		chain, err := parseCertBlocks(certPEM)
		return certParse{chain, err}
	})
	chain, err := cp.chain, cp.err
	if err != nil {
		return nil, nil, fileErr(certFile, err)
	}
	kparse := lookup(l.cache(), keyFile, keyPEM, keyInfo, func() keyParse {
		key, err := parseKeyBlocks(keyPEM)
		return keyParse{key, err}
	})
	key, err := kparse.key, kparse.err
	if err != nil {
		return nil, nil, fileErr(keyFile, err)
	}
	if err := checkChain(chain, role, now); err != nil {
		return nil, nil, fileErr(certFile, err)
	}
	if !publicKeysEqual(chain[0].PublicKey, key.Public()) {
		return nil, nil, fileErr(keyFile, fmt.Errorf("private key (%s) does not match the public key (%s) of %s in %s",
			keyDesc(key.Public()), keyDesc(chain[0].PublicKey), certName(0, chain[0]), certFile))
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fileErr(keyFile, fmt.Errorf("re-encode private key: %w", err))
	}
	var chainPEM []byte
	for _, c := range chain {
		chainPEM = append(chainPEM, pemder.Encode(pemder.TypeCertificate, c.Raw)...)
	}
	var warnings []Problem
	if chain[0].IsCA {
		warnings = append(warnings, Problem{File: certFile, Err: fileErr(certFile, caWarning(chain[0]))})
	}
	for i, c := range chain {
		if left := c.NotAfter.Sub(now); left < l.expiryWarning() {
			warnings = append(warnings, Problem{File: certFile, Err: fileErr(certFile,
				fmt.Errorf("%s expires on %s, in %d days", certName(i, c), c.NotAfter.UTC().Format(timeFormat), int(left.Hours()/24)))})
		}
	}
	out := &KeyPair{
		Name:     name,
		Chain:    chain,
		Key:      key,
		ChainPEM: chainPEM,
		KeyPEM:   pemder.Encode("PRIVATE KEY", keyDER),
		CertFile: certFile,
		KeyFile:  keyFile,
	}
	out.Fingerprint = fingerprint(out.ChainPEM, out.KeyPEM)
	return out, warnings, nil
}
