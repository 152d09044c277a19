package config

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/certplane/certplane/crl"
)

// TrustMemory is what trust-store admission remembers from one load to the
// next, so that one bad file neither freezes a store nor takes it back in
// time:
//   - per file, its last good content: a file that turns bad keeps serving
//     it while the other files of its store are admitted as usual;
//   - per store and issuing CA, the newest CRL admitted: an older CRL is
//     refused (revocation never goes backwards), and a CA whose CRL file is
//     deleted keeps its newest CRL until the CA itself leaves the store.
//
// Without a state directory the memory lives as long as the process, and a
// restart trusts what is on disk. With one, the newest CRL of each issuer is
// written there (atomically, mode 0600 in a 0700 directory) before it is
// served, and read back at start. Share one TrustMemory between the Loaders
// of one process (Loader.Trust); it is safe for concurrent use.
type TrustMemory struct {
	mu     sync.Mutex
	stores map[string]*storeMemory // by trust store name
	state  *crlState               // nil: memory is per process
	cache  *ParseCache             // the loader's parse cache unless Loader.Cache is set
}

// storeMemory is what is remembered of one trust store.
type storeMemory struct {
	files  map[string]*fileGood  // last good content, by path
	newest map[string]*crlRecord // newest CRL, by issuerKey
	// last is the store last built, with what it was built from: a load
	// that admits the very same CAs and CRLs from the same files returns it
	// as it is, not a new copy of its (possibly tens of MB of) PEM.
	last     *TrustStore
	lastFrom []any
	// cas is the CA half of the last build: a new CRL in a store of
	// 10,000 CAs re-encodes none of them.
	cas      []*x509.Certificate
	caPEM    []byte
	caDigest []byte
}

// fileGood is the last good content of one trust store file. Its CRLs are
// summaries and PEM, shared with the parse cache and the store served.
type fileGood struct {
	cas  []*x509.Certificate
	crls []*parsedCRL
}

// crlRecord is the newest CRL of one issuer: its summary (number and
// thisUpdate order it) and PEM, never its entries.
type crlRecord struct {
	crl  *parsedCRL
	file string // where it was admitted from, for messages
}

// NewTrustMemory returns an empty memory, or, when stateDir is set, one that
// holds the newest CRLs saved there. readOnly (certplane check) reads the
// state and never writes it; otherwise stateDir is created mode 0700 if
// missing, and refused when group or others may write to it.
func NewTrustMemory(stateDir string, readOnly bool) (*TrustMemory, error) {
	m := &TrustMemory{stores: map[string]*storeMemory{}, cache: NewParseCache()}
	if stateDir == "" {
		return m, nil
	}
	st, saved, err := openCRLState(stateDir, readOnly)
	if err != nil {
		return nil, err
	}
	m.state = st
	for store, recs := range saved {
		m.store(store).newest = recs
	}
	return m, nil
}

// store returns the memory of one trust store, creating it.
func (m *TrustMemory) store(name string) *storeMemory {
	sm := m.stores[name]
	if sm == nil {
		sm = &storeMemory{files: map[string]*fileGood{}, newest: map[string]*crlRecord{}}
		m.stores[name] = sm
	}
	return sm
}

// issuerKey names a CA for the newest-CRL memory: its subject and key
// identifier, so that a re-keyed CA with the same name starts afresh. A CA
// without a subject key identifier is named by its public key.
func issuerKey(ca *x509.Certificate) string {
	id := ca.SubjectKeyId
	if len(id) == 0 {
		sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
		id = sum[:]
	}
	h := sha256.New()
	h.Write(ca.RawSubject)
	h.Write([]byte{0})
	h.Write(id)
	return hex.EncodeToString(h.Sum(nil))
}

// olderThan reports whether r is an older CRL than n of the same issuer
// (crl.Newer: a lower CRL number, or, when the numbers are equal or either
// is absent, an earlier thisUpdate). Equal ones are the same CRL for this
// purpose.
func (r *crlRecord) olderThan(n *crlRecord) bool {
	return crl.Newer(n.crl.sum, r.crl.sum)
}

// describe names a CRL's position in its issuer's sequence for messages.
func (r *crlRecord) describe() string {
	s := r.crl.sum
	num := "no CRL number"
	if s.Number != nil {
		num = "CRL number " + s.Number.String()
	}
	return fmt.Sprintf("%s (thisUpdate %s)", num, s.ThisUpdate.UTC().Format(timeFormat))
}
