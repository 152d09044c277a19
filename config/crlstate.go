package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/certplane/certplane/pki"
)

// crlState keeps the newest CRL of each issuer on disk, so that a restart
// refuses an older CRL as the running process did:
//
//	STATE/crl/<store>/<issuer key>.der
//
// Each file is the DER of the newest CRL admitted, written atomically (temp
// file and rename) with mode 0600 in directories of mode 0700.
type crlState struct {
	dir      string // STATE/crl
	readOnly bool
}

// maxStateFile bounds a state file as the loader bounds a trust file.
const maxStateFile = DefaultMaxTrustFileSize

// openCRLState opens (creating unless readOnly) the state directory and
// reads every CRL saved there, by store and issuer key.
func openCRLState(stateDir string, readOnly bool) (*crlState, map[string]map[string]*crlRecord, error) {
	st := &crlState{dir: filepath.Join(stateDir, "crl"), readOnly: readOnly}
	if !readOnly {
		if err := st.mkdir(stateDir); err != nil {
			return nil, nil, err
		}
	}
	saved := map[string]map[string]*crlRecord{}
	stores, err := os.ReadDir(st.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return st, saved, nil
	}
	if err != nil {
		return nil, nil, fileErr(st.dir, fmt.Errorf("cannot read the state directory: %w", unwrapPathError(err)))
	}
	for _, s := range stores {
		if !s.IsDir() || ignoredName(s.Name()) {
			continue
		}
		recs, err := st.readStore(s.Name())
		if err != nil {
			return nil, nil, err
		}
		saved[s.Name()] = recs
	}
	return st, saved, nil
}

// mkdir creates stateDir and its crl/ directory mode 0700, and refuses a
// state directory others may write to: whoever writes there decides which
// CRL counts as the newest.
func (s *crlState) mkdir(stateDir string) error {
	for _, d := range []string{stateDir, s.dir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fileErr(d, fmt.Errorf("cannot create the state directory: %w", unwrapPathError(err)))
		}
		info, err := os.Stat(d)
		if err != nil {
			return fileErr(d, fmt.Errorf("cannot read the state directory: %w", unwrapPathError(err)))
		}
		if perm := info.Mode().Perm(); perm&0o022 != 0 {
			return fileErr(d, fmt.Errorf("the state directory is writable by group or others (mode %04o); chmod 700 it", perm))
		}
	}
	return nil
}

// readStore reads the saved CRLs of one store.
func (s *crlState) readStore(store string) (map[string]*crlRecord, error) {
	dir := filepath.Join(s.dir, store)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fileErr(dir, fmt.Errorf("cannot read the state directory: %w", unwrapPathError(err)))
	}
	recs := map[string]*crlRecord{}
	for _, e := range entries {
		key, ok := strings.CutSuffix(e.Name(), ".der")
		if !ok || ignoredName(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		der, _, err := readFile(p, maxStateFile)
		if err != nil {
			return nil, err
		}
		c, err := newParsedCRL(der)
		if err != nil {
			return nil, fileErr(p, fmt.Errorf("not a DER CRL: %w; remove this file, and certplane forgets the newest CRL of that CA", err))
		}
		recs[key] = &crlRecord{crl: c, file: p}
	}
	return recs, nil
}

func (s *crlState) path(store, key string) string {
	return filepath.Join(s.dir, store, key+".der")
}

// save writes the newest CRL of one issuer.
func (s *crlState) save(store, key string, der []byte) error {
	if s.readOnly {
		return nil
	}
	dir := filepath.Join(s.dir, store)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fileErr(dir, fmt.Errorf("cannot create the state directory: %w", unwrapPathError(err)))
	}
	if err := pki.WriteFileAtomic(s.path(store, key), der, 0o600); err != nil {
		// pki's error repeats the path; keep what went wrong.
		if inner := errors.Unwrap(err); inner != nil {
			err = unwrapPathError(inner)
		}
		return fileErr(s.path(store, key), fmt.Errorf("cannot write the newest CRL: %w", err))
	}
	return nil
}

// remove forgets the newest CRL of one issuer.
func (s *crlState) remove(store, key string) error {
	if s.readOnly {
		return nil
	}
	if err := os.Remove(s.path(store, key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fileErr(s.path(store, key), fmt.Errorf("cannot remove: %w", unwrapPathError(err)))
	}
	return nil
}
