package config

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// loaded is what the certificate directory yields: valid items by name, the
// problems of invalid ones by name (Listener ""), the defects of items that
// are served anyway (a trust store with a bad file), and warnings.
type loaded[T any] struct {
	ok       map[string]T
	bad      map[string][]Problem
	errs     []Problem // defects of items served anyway (Listener "")
	warnings []Problem
}

func newLoaded[T any]() *loaded[T] {
	return &loaded[T]{ok: map[string]T{}, bad: map[string][]Problem{}}
}

func (ld *loaded[T]) fail(name string, err error) {
	ld.bad[name] = append(ld.bad[name], problemsOf("", err)...)
}

func (ld *loaded[T]) warn(file string, err error) {
	ld.warnings = append(ld.warnings, problemOf("", fileErr(file, err)))
}

// problemsOf splits a joined error into one Problem per defect.
func problemsOf(listener string, err error) []Problem {
	var out []Problem
	for _, e := range defects(err) {
		out = append(out, problemOf(listener, e))
	}
	return out
}

// defects splits a joined error into its defects.
func defects(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, defects(e)...)
		}
		return out
	}
	return []error{err}
}

// pairFiles are the two files of one key pair, in either layout.
type pairFiles struct {
	cert, key string
	layouts   []string // where it was defined, to refuse both layouts at once
}

// loadKeyPairs reads certs/server or certs/client: <name>/tls.crt+tls.key
// (the Kubernetes Secret layout) or <name>.crt+<name>.key.
func (l Loader) loadKeyPairs(dir, role string) (*loaded[*KeyPair], error) {
	ld := newLoaded[*KeyPair]()
	entries, err := listDir(dir)
	if err != nil {
		return nil, err
	}
	pairs := map[string]*pairFiles{}
	get := func(name string) *pairFiles {
		if pairs[name] == nil {
			pairs[name] = &pairFiles{}
		}
		return pairs[name]
	}
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.name))
		name := e.name
		if ext == ".crt" || ext == ".key" {
			name = strings.TrimSuffix(e.name, filepath.Ext(e.name))
		}
		if e.err != nil {
			ld.fail(name, e.err)
			continue
		}
		switch {
		case e.info.IsDir():
			p := get(name)
			p.cert, p.key = filepath.Join(e.path, "tls.crt"), filepath.Join(e.path, "tls.key")
			p.layouts = append(p.layouts, e.path+"/")
		case ext == ".crt":
			p := get(name)
			p.cert = e.path
			p.layouts = append(p.layouts, e.path)
		case ext == ".key":
			get(name).key = e.path
		default:
			ld.warn(e.path, fmt.Errorf("ignored: want %s/<name>/tls.crt and tls.key, or %s/<name>.crt and <name>.key", filepath.Base(dir), filepath.Base(dir)))
		}
	}
	names := make([]string, 0, len(pairs))
	for n := range pairs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		p := pairs[name]
		if _, failed := ld.bad[name]; failed {
			continue
		}
		switch {
		case !reFileName.MatchString(name):
			ld.fail(name, fileErr(filepath.Join(dir, name), fmt.Errorf("%q is not a usable certificate name (letters, digits, '.', '_', '-')", name)))
			continue
		case len(p.layouts) > 1:
			ld.fail(name, fileErr(filepath.Join(dir, name), fmt.Errorf("certificate %q is defined twice: %s; keep one layout", name, strings.Join(p.layouts, " and "))))
			continue
		case p.cert == "":
			ld.fail(name, fileErr(p.key, fmt.Errorf("no certificate for this key: want %s", filepath.Join(dir, name+".crt"))))
			continue
		case p.key == "":
			ld.fail(name, fileErr(p.cert, fmt.Errorf("no private key for this certificate: want %s", filepath.Join(dir, name+".key"))))
			continue
		}
		certPEM, certInfo, err := readFile(p.cert, l.maxFileSize())
		if err != nil {
			ld.fail(name, err)
			continue
		}
		keyPEM, keyInfo, err := readFile(p.key, l.maxFileSize())
		if err != nil {
			ld.fail(name, err)
			continue
		}
		kp, warnings, err := l.parseKeyPair(role, name, p.cert, certPEM, certInfo, p.key, keyPEM, keyInfo)
		ld.warnings = append(ld.warnings, warnings...)
		if err != nil {
			ld.fail(name, err)
			continue
		}
		if perm := keyInfo.Mode().Perm(); perm&0o077 != 0 {
			ld.warn(p.key, fmt.Errorf("private key is readable by group or others (mode %04o); chmod 600 it", perm))
		}
		ld.ok[name] = kp
	}
	return ld, nil
}

// trustExt reports whether a file in a trust store directory is read.
func trustExt(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".pem", ".crt", ".crl":
		return true
	}
	return false
}

// loadTrustStores reads certs/trust/<store>/ directories.
func (l Loader) loadTrustStores(dir string) (*loaded[*TrustStore], error) {
	ld := newLoaded[*TrustStore]()
	entries, err := listDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.err != nil {
			ld.fail(e.name, e.err)
			continue
		}
		if !e.info.IsDir() {
			ld.warn(e.path, errors.New("ignored: a trust store is a directory, trust/<store>/ holding *.pem, *.crt and *.crl files"))
			continue
		}
		if !reFileName.MatchString(e.name) {
			ld.fail(e.name, fileErr(e.path, fmt.Errorf("%q is not a usable trust store name (letters, digits, '.', '_', '-')", e.name)))
			continue
		}
		files, err := listDir(e.path)
		if err != nil {
			ld.fail(e.name, err)
			continue
		}
		in, err := l.readTrustStore(ld, e.name, e.path, files)
		if err != nil {
			ld.fail(e.name, err)
			continue
		}
		if len(in) == 0 {
			ld.fail(e.name, fileErr(e.path, fmt.Errorf("%w: add *.pem or *.crt files", errNoCA)))
			continue
		}
		in = append(in, l.fetchedInputs(e.name)...)
		ts, warnings, err := l.admitTrustStore(e.name, in)
		ld.warnings = append(ld.warnings, warnings...)
		if ts == nil {
			ld.fail(e.name, err)
			continue
		}
		if err != nil {
			ld.errs = append(ld.errs, problemsOf("", err)...)
		}
		ld.ok[e.name] = ts
	}
	return ld, nil
}

// readTrustStore reads the files of one trust store. Their total size is
// checked against the store limit first, from the sizes the directory
// listing gives: a store over it is refused before any byte is read, and
// the reads that follow are bounded. A file that cannot be read is an input
// that carries its error: admission handles it as any bad file.
func (l Loader) readTrustStore(ld *loaded[*TrustStore], name, dir string, files []entry) ([]trustInput, error) {
	var in []trustInput
	var sized []entry
	var total int64
	for _, f := range files {
		switch {
		case f.err != nil:
			in = append(in, trustInput{path: f.path, err: f.err})
			continue
		case f.info.IsDir():
			continue
		case !trustExt(f.name):
			ld.warn(f.path, errors.New("ignored: a trust store reads *.pem, *.crt and *.crl files"))
			continue
		}
		sized = append(sized, f)
		if f.info.Mode().IsRegular() {
			total += f.info.Size()
		}
	}
	limit := l.maxTrustStoreSize()
	if total > limit {
		return nil, storeTooLarge(name, dir, sized, total, limit)
	}
	var read int64
	for _, f := range sized {
		if tp, ok := settled[*trustParse](l.cache(), f.path, f.info); ok {
			read += f.info.Size()
			in = append(in, trustInput{path: f.path, info: f.info, parsed: tp})
			continue
		}
		b, info, err := readFile(f.path, l.maxTrustFileSize())
		read += int64(len(b))
		if read > limit {
			// A file grew after it was listed: the overshoot is bounded
			// by one file's limit, and the store is refused all the same.
			return nil, storeTooLarge(name, dir, sized, read, limit)
		}
		in = append(in, trustInput{path: f.path, data: b, info: info, err: err})
	}
	return in, nil
}

// storeTooLarge is the defect of a trust store over the size limit; it
// names its largest files, the ones to look at.
func storeTooLarge(name, dir string, files []entry, total, limit int64) error {
	bySize := slices.Clone(files)
	slices.SortStableFunc(bySize, func(x, y entry) int { return cmp.Compare(y.info.Size(), x.info.Size()) })
	var largest []string
	for _, f := range bySize[:min(3, len(bySize))] {
		largest = append(largest, fmt.Sprintf("%s (%d bytes)", f.name, f.info.Size()))
	}
	return fileErr(dir, fmt.Errorf("trust store %q holds %d bytes in %d files, over the limit of %d bytes per trust store (--max-trust-store-size): nothing was read, and its last good version stays served; largest files: %s",
		name, total, len(files), limit, strings.Join(largest, ", ")))
}
