package config

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certplane/certplane/internal/rope"
	"github.com/certplane/certplane/pemder"
)

// trustInput is one file of a trust store as read: its content, or why it
// could not be read.
type trustInput struct {
	path string
	data []byte
	info fs.FileInfo // for the parse cache; nil: not cached
	// parsed, when set, is the cached parse of the file, not read again
	// (ParseCache settled); data is then nil.
	parsed *trustParse
	err    error
}

// admitTrustStore admits one trust store against what l.Trust remembers of
// it (nothing when l.Trust is nil), and updates that memory when the store
// is admitted.
func (l Loader) admitTrustStore(name string, in []trustInput) (*TrustStore, []Problem, error) {
	mem := l.Trust
	if mem == nil {
		mem = &TrustMemory{stores: map[string]*storeMemory{}}
	}
	mem.mu.Lock()
	defer mem.mu.Unlock()
	a := &storeAdmission{
		l: l, name: name, now: l.now(), mem: mem.store(name), state: mem.state,
		content: map[string]*trustFile{}, good: map[string]bool{}, forget: map[string]bool{},
	}
	ts, err := a.run(in)
	a.release()
	return ts, a.warnings, err
}

// storeAdmission admits the files of one trust store, each on its own. The
// file is the unit of admission, and in a file the CRL of each CA: a file
// that cannot be used is replaced by its last good content, or left out
// when it never had one, and the rest of the store is admitted as usual; a
// CRL older than the newest one seen of its CA is refused and the newer one
// served. Every such defect is an error naming the file, returned with the
// admitted store. The store is refused as a whole only when no CA is left,
// or when no CRL is left while a file that may have carried one is out.
type storeAdmission struct {
	l     Loader
	name  string
	now   time.Time
	mem   *storeMemory
	state *crlState

	paths    []string              // every file, sorted
	content  map[string]*trustFile // what each file contributes
	good     map[string]bool       // files admitted whole: remembered as last good
	failures []fileFailure         // files or CRLs replaced or left out
	errs     []error               // other defects; the store is served anyway
	warnings []Problem
	lost     bool // something was left out with nothing to replace it

	cas       []*x509.Certificate
	byKey     map[string]*x509.Certificate   // CAs by issuerKey
	bySubject map[string][]*x509.Certificate // CAs by RawSubject: a CRL's candidate issuers
	served    []servedCRL
	forget    map[string]bool // remembered CRLs that no longer verify
}

// fileFailure is a file (or only its CRLs) that could not be admitted.
type fileFailure struct {
	err      error
	fallback bool // its last good content is served instead
	crlsOnly bool // only its CRLs: its CAs are admitted
}

// servedCRL is a CRL chosen to be served, with where it came from.
type servedCRL struct {
	c    *parsedCRL
	i    int    // its index in its file, for messages
	file string // its file, or the state file it was remembered in
	key  string // its issuer's issuerKey
}

func (s servedCRL) record() *crlRecord { return &crlRecord{crl: s.c, file: s.file} }

func (a *storeAdmission) run(in []trustInput) (*TrustStore, error) {
	a.parseFiles(in)
	a.collectCAs()
	if len(a.cas) == 0 {
		if len(a.failures) == 0 {
			return nil, fileErr(a.dir(), errNoCA)
		}
		return nil, a.refusal("")
	}
	a.pickNewest(a.checkCRLs())
	a.keepRememberedCRLs()
	if len(a.served) == 0 && a.lost {
		return nil, a.refusal("without it the store has no CRL, and then no client would be checked for revocation: the whole store is refused until the file is fixed")
	}
	a.checkDates()
	ts := a.build()
	a.commit()
	return ts, a.err()
}

// dir is the store's directory, for store-wide messages.
func (a *storeAdmission) dir() string {
	if len(a.paths) == 0 {
		return a.name
	}
	return filepath.Dir(a.paths[0])
}

// parseFiles parses each file on its own; a file that fails is replaced by
// its last good content.
func (a *storeAdmission) parseFiles(in []trustInput) {
	slices.SortFunc(in, func(x, y trustInput) int { return strings.Compare(x.path, y.path) })
	for _, f := range in {
		a.paths = append(a.paths, f.path)
		err := f.err
		if err == nil {
			var tf *trustFile
			tf, err = a.l.parseTrustFile(f.path, f.data, f.info, f.parsed, a.now, func(w error) {
				a.warnings = append(a.warnings, problemOf("", fileErr(f.path, w)))
			})
			if err == nil {
				a.content[f.path] = tf
				a.good[f.path] = true
				continue
			}
		}
		a.fileFailed(f.path, err, false)
	}
}

// fileFailed replaces what file contributes (or only its CRLs) by its last
// good content, or leaves it out.
func (a *storeAdmission) fileFailed(file string, err error, crlsOnly bool) {
	last := a.mem.files[file]
	a.failures = append(a.failures, fileFailure{err: err, fallback: last != nil, crlsOnly: crlsOnly})
	delete(a.good, file)
	if last == nil {
		a.lost = true
	}
	tf := &trustFile{}
	if crlsOnly {
		tf.cas = a.content[file].cas
	} else if last != nil {
		tf.cas = last.cas
	}
	if last != nil {
		tf.crls = last.crls
	}
	a.content[file] = tf
}

// collectCAs gathers the CAs of every file, each once.
func (a *storeAdmission) collectCAs() {
	a.byKey = map[string]*x509.Certificate{}
	a.bySubject = map[string][]*x509.Certificate{}
	seen := map[string]string{} // CA DER -> file of its first copy
	for _, file := range a.paths {
		tf := a.content[file]
		if tf == nil {
			continue
		}
		for i, c := range tf.cas {
			if first, dup := seen[string(c.Raw)]; dup {
				a.warnings = append(a.warnings, problemOf("", fileErr(file, fmt.Errorf("%s duplicates a CA already in %s; it is used once", certName(i, c), first))))
				continue
			}
			seen[string(c.Raw)] = file
			a.cas = append(a.cas, c)
			a.byKey[issuerKey(c)] = c
			a.bySubject[string(c.RawSubject)] = append(a.bySubject[string(c.RawSubject)], c)
		}
	}
}

// checkCRLs admits the CRLs of every file against the store's CAs. A file
// with a CRL that fails has its CRLs replaced by its last good ones.
func (a *storeAdmission) checkCRLs() []servedCRL {
	var out []servedCRL
	for _, file := range a.paths {
		tf := a.content[file]
		if tf == nil || len(tf.crls) == 0 {
			continue
		}
		cands, err := a.checkFileCRLs(file, tf.crls)
		if err != nil && a.good[file] {
			a.fileFailed(file, err, true)
			// The last good CRLs passed once; one whose CA has left since
			// is of no use and goes silently.
			cands, _ = a.checkFileCRLs(file, a.content[file].crls)
		}
		out = append(out, cands...)
	}
	return out
}

// checkFileCRLs returns the CRLs of a file that pass checkCRL, and the
// defects of the others.
func (a *storeAdmission) checkFileCRLs(file string, crls []*parsedCRL) ([]servedCRL, error) {
	var out []servedCRL
	var errs []error
	for i, c := range crls {
		issuer, err := checkCRL(c, i, a.bySubject[string(c.sum.RawIssuer)], a.name, a.now)
		if err != nil {
			errs = append(errs, fileErr(file, err))
			continue
		}
		out = append(out, servedCRL{c: c, i: i, file: file, key: issuerKey(issuer)})
	}
	return out, errors.Join(errs...)
}

// pickNewest serves exactly one CRL per CA, the newest known: the newest of
// the files or, when it is newer still, the one remembered. Every older CRL
// is refused with an error, so revocation never goes backwards.
func (a *storeAdmission) pickNewest(cands []servedCRL) {
	var keys []string
	byKey := map[string][]servedCRL{}
	for _, c := range cands {
		if byKey[c.key] == nil {
			keys = append(keys, c.key)
		}
		byKey[c.key] = append(byKey[c.key], c)
	}
	for _, key := range keys {
		cs := byKey[key]
		best := cs[0]
		for _, c := range cs[1:] {
			if best.record().olderThan(c.record()) {
				best = c
			}
		}
		where := "in " + best.file
		if rem := a.mem.newest[key]; rem != nil && best.record().olderThan(rem) {
			if s, ok := a.remembered(key); ok {
				best, where = s, "already served for this CA (from "+rem.file+")"
			}
		}
		for _, c := range cs {
			if c.record().olderThan(best.record()) {
				delete(a.good, c.file)
				a.errs = append(a.errs, fileErr(c.file, fmt.Errorf(
					"%s has %s, older than %s %s: refused, so that revocation never goes backwards; the newer CRL is still served (a CA that restarted its CRL numbering must leave the store once)",
					crlName(c.i, c.c.sum), c.record().describe(), best.record().describe(), where)))
			}
		}
		a.served = append(a.served, best)
	}
}

// remembered returns the remembered newest CRL of a CA of the store, parsed
// and checked against that CA; one that no longer verifies is forgotten.
func (a *storeAdmission) remembered(key string) (servedCRL, bool) {
	rem, ca := a.mem.newest[key], a.byKey[key]
	if rem == nil || ca == nil {
		return servedCRL{}, false
	}
	_, err := rem.crl.admit([]*x509.Certificate{ca}, a.now)
	if err != nil {
		a.forget[key] = true
		a.warnings = append(a.warnings, problemOf("", fileErr(rem.file, fmt.Errorf("the newest CRL remembered for CA %s no longer verifies against it (%w); it is forgotten", subjectOf(ca), err))))
		return servedCRL{}, false
	}
	return servedCRL{c: rem.crl, file: rem.file, key: key}, true
}

// keepRememberedCRLs serves the remembered newest CRL of each CA of the
// store that no file gives a CRL for any more (its file deleted, or bad
// since before this process started): revocation never goes backwards
// while the CA stays in the store.
func (a *storeAdmission) keepRememberedCRLs() {
	has := map[string]bool{}
	for _, s := range a.served {
		has[s.key] = true
	}
	for _, ca := range a.cas {
		key := issuerKey(ca)
		if has[key] {
			continue
		}
		s, ok := a.remembered(key)
		if !ok {
			continue
		}
		has[key] = true
		a.served = append(a.served, s)
		a.warnings = append(a.warnings, problemOf("", fileErr(a.dir(), fmt.Errorf(
			"no file of trust store %q gives a CRL of CA %s any more; its newest CRL, %s from %s, is still served so that revocation never goes backwards: to stop checking that CA's CRL, remove the CA from the store",
			a.name, subjectOf(ca), s.record().describe(), s.file))))
	}
}

// checkDates reports the served CRLs that expired (served all the same:
// the handshakes of their CA's clients fail closed) or expire soon.
func (a *storeAdmission) checkDates() {
	for _, s := range a.served {
		if err := crlExpired(s.c.sum, s.i, a.now); err != nil {
			a.errs = append(a.errs, fileErr(s.file, err))
		} else if w := crlExpiring(s.c.sum, s.i, a.now); w != nil {
			a.warnings = append(a.warnings, problemOf("", fileErr(s.file, w)))
		}
	}
}

func (a *storeAdmission) build() *TrustStore {
	from := make([]any, 0, len(a.paths)+len(a.cas)+2*len(a.served))
	for _, p := range a.paths {
		from = append(from, p)
	}
	for _, c := range a.cas {
		from = append(from, c)
	}
	for _, s := range a.served {
		from = append(from, s.c, s.file)
	}
	if a.mem.last != nil && slices.Equal(a.mem.lastFrom, from) {
		return a.mem.last
	}
	defer func() { a.mem.lastFrom = from }()
	ts := &TrustStore{Name: a.name, Files: a.paths}
	a.mem.last = ts
	ts.CAs = a.cas
	if a.mem.caDigest == nil || !slices.Equal(a.mem.cas, a.cas) {
		var caPEM []byte
		d := sha256.New()
		for _, c := range a.cas {
			caPEM = append(caPEM, pemder.Encode(pemder.TypeCertificate, c.Raw)...)
			sum := sha256.Sum256(c.Raw)
			d.Write(sum[:])
		}
		a.mem.cas, a.mem.caPEM, a.mem.caDigest = a.cas, caPEM, d.Sum(nil)
	}
	ts.CAPEM = a.mem.caPEM // shared between builds: served bytes are never mutated
	fp := sha256.New()
	fp.Write([]byte(a.name))
	fp.Write(a.mem.caDigest)
	fp.Write([]byte{0})
	// The bundle is a rope of the served CRLs' PEM, each held where the
	// parse cache holds it: a new CRL of one CA costs its own bytes, not a
	// copy of every CRL of the store (46 MB beside a 1M-serial CRL).
	chunks := make([]rope.Chunk, 0, len(a.served))
	for _, s := range a.served {
		ts.CRLs = append(ts.CRLs, s.c.model(s.file))
		fp.Write(s.c.sum.SHA256[:])
		// The PEM is pemder's canonical encoding of the DER (parseCRLFile
		// keeps a file's bytes only when equal to it): the DER's SHA-256
		// names the chunk.
		chunks = append(chunks, rope.Chunk{Bytes: s.c.pemBytes(), SHA256: s.c.sum.SHA256})
	}
	ts.CRLPEM = rope.New(chunks)
	ts.Fingerprint = hex.EncodeToString(fp.Sum(nil))
	return ts
}

// release drops the DER of every CRL this admission saw: what stays (in
// the parse cache, the memory and the model) is summaries and PEM.
func (a *storeAdmission) release() {
	for _, tf := range a.content {
		for _, c := range tf.crls {
			c.release()
		}
	}
	for _, s := range a.served {
		s.c.release()
	}
}

// commit remembers what the admitted store serves: each file admitted whole
// as its last good content (a file that is gone is forgotten), and the CRL
// served for each CA as its newest, written to the state directory before
// the store is served. A CA that left the store is forgotten.
func (a *storeAdmission) commit() {
	files := make(map[string]*fileGood, len(a.paths))
	for _, p := range a.paths {
		switch {
		case a.good[p]:
			files[p] = &fileGood{cas: a.content[p].cas, crls: a.content[p].crls}
		case a.mem.files[p] != nil:
			files[p] = a.mem.files[p]
		}
	}
	a.mem.files = files
	for _, s := range a.served {
		rec, cur := s.record(), a.mem.newest[s.key]
		// Holding the served CRL's own bytes lets the remembered copy go.
		a.mem.newest[s.key] = rec
		if cur == nil || cur.crl.sum.SHA256 != rec.crl.sum.SHA256 {
			a.saveState(s.key, rec)
		}
	}
	for key := range a.mem.newest {
		if a.byKey[key] == nil || a.forget[key] {
			delete(a.mem.newest, key)
			if a.state != nil {
				if err := a.state.remove(a.name, key); err != nil {
					a.warnings = append(a.warnings, problemOf("", err))
				}
			}
		}
	}
}

func (a *storeAdmission) saveState(key string, rec *crlRecord) {
	if a.state == nil {
		return
	}
	der, err := rec.crl.derBytes()
	if err == nil {
		err = a.state.save(a.name, key, der)
	}
	if err != nil {
		a.warnings = append(a.warnings, problemOf("", fmt.Errorf("%w: after a restart an older CRL of this CA would be accepted", err)))
	}
}

// err joins the defects of an admitted store, each saying what is served
// in place of the defective file.
func (a *storeAdmission) err() error {
	var errs []error
	for _, f := range a.failures {
		note := "the file is left out until it is fixed"
		switch {
		case f.fallback && f.crlsOnly:
			note = "the last good CRLs of this file are still served"
		case f.fallback:
			note = "the last good content of this file is still served"
		case f.crlsOnly:
			note = "the CRLs of this file are left out until it is fixed"
		}
		errs = append(errs, noted(f.err, note)...)
	}
	return errors.Join(append(errs, a.errs...)...)
}

// refusal joins the defects of a refused store; note, when set, says why
// each file left out refuses the whole store.
func (a *storeAdmission) refusal(note string) error {
	var errs []error
	for _, f := range a.failures {
		if note != "" && !f.fallback {
			errs = append(errs, noted(f.err, note)...)
		} else {
			errs = append(errs, f.err)
		}
	}
	return errors.Join(append(errs, a.errs...)...)
}

// noted splits a joined error and appends note to each defect.
func noted(err error, note string) []error {
	var out []error
	for _, e := range defects(err) {
		out = append(out, fmt.Errorf("%w; %s", e, note))
	}
	return out
}
