package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// loaded is what the certificate directory yields: valid items by name, the
// problems of invalid ones by name (Listener ""), and warnings.
type loaded[T any] struct {
	ok       map[string]T
	bad      map[string][]Problem
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
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []Problem
		for _, e := range j.Unwrap() {
			out = append(out, problemsOf(listener, e)...)
		}
		return out
	}
	return []Problem{problemOf(listener, err)}
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
		certPEM, _, err := readFile(p.cert, l.maxFileSize())
		if err != nil {
			ld.fail(name, err)
			continue
		}
		keyPEM, keyInfo, err := readFile(p.key, l.maxFileSize())
		if err != nil {
			ld.fail(name, err)
			continue
		}
		kp, warnings, err := l.ParseKeyPair(role, name, p.cert, certPEM, p.key, keyPEM)
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
		data := map[string][]byte{}
		failed := false
		for _, f := range files {
			if f.err != nil {
				ld.fail(e.name, f.err)
				failed = true
				continue
			}
			if f.info.IsDir() {
				continue
			}
			if !trustExt(f.name) {
				ld.warn(f.path, errors.New("ignored: a trust store reads *.pem, *.crt and *.crl files"))
				continue
			}
			b, _, err := readFile(f.path, l.maxTrustFileSize())
			if err != nil {
				ld.fail(e.name, err)
				failed = true
				continue
			}
			data[f.path] = b
		}
		if failed {
			continue
		}
		if len(data) == 0 {
			ld.fail(e.name, fileErr(e.path, fmt.Errorf("%w: add *.pem or *.crt files", errNoCA)))
			continue
		}
		ts, warnings, err := l.ParseTrustStore(e.name, data)
		ld.warnings = append(ld.warnings, warnings...)
		if err != nil {
			ld.fail(e.name, err)
			continue
		}
		ld.ok[e.name] = ts
	}
	return ld, nil
}
