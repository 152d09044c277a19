package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The top-level trust_stores section: settings of a trust store that its
// directory cannot carry. Today: crl_fetch, CRLs fetched from the PKI's
// distribution points by the control plane (crlfetch/), which writes them
// into the state directory; the loader reads them from there as one more
// CRL source of the store (Loader.FetchedDir), under the same admission.

type rawTrustStore struct {
	Name     string       `yaml:"name"`
	CRLFetch *rawCRLFetch `yaml:"crl_fetch"`
}

type rawCRLFetch struct {
	Interval string   `yaml:"interval"`
	Timeout  string   `yaml:"timeout"`
	URLs     []string `yaml:"urls"`
}

// CRLFetch is the crl_fetch setting of one trust store.
type CRLFetch struct {
	Store    string        // certs/trust/<Store>
	Interval time.Duration // refresh; the fetcher also refreshes early before nextUpdate
	Timeout  time.Duration // one fetch, connect to last byte
	// URLs are fetched besides the http(s) CRL Distribution Points of the
	// store's CA certificates.
	URLs []string
	File string // the config file and line that define it
	Line int
}

// Defaults of crl_fetch.
const (
	DefaultCRLFetchInterval = time.Hour
	DefaultCRLFetchTimeout  = 5 * time.Second
)

// convertTrustStores converts the trust_stores entries of one document;
// a bad entry is a problem of that entry alone.
func (cf *ConfigFile) convertTrustStores(raw []rawTrustStore, root *yaml.Node) {
	seq := mapValue(root, "trust_stores")
	for i, rt := range raw {
		n := seqItem(seq, i)
		fetch, err := convertTrustStore(&rt, n)
		if err != nil {
			cf.trustErrs = append(cf.trustErrs, problemOf("", lineErr(cf.File, err.line, fmt.Errorf("trust_stores[%d] %q: %w", i, rt.Name, err.err))))
			continue
		}
		if fetch != nil {
			fetch.File = cf.File
			cf.CRLFetch = append(cf.CRLFetch, fetch)
		}
	}
}

func convertTrustStore(rt *rawTrustStore, n *yaml.Node) (*CRLFetch, *itemErr) {
	at := func(keys ...string) int { return pathLine(n, lineOf(n, 0), keys...) }
	if !reFileName.MatchString(rt.Name) {
		return nil, errAt(at("name"), "name must be a directory under certs/trust (letters, digits, '.', '_', '-')")
	}
	rf := rt.CRLFetch
	if rf == nil {
		return nil, nil
	}
	f := &CRLFetch{Store: rt.Name, Interval: DefaultCRLFetchInterval, Timeout: DefaultCRLFetchTimeout, Line: at("crl_fetch")}
	for _, d := range []struct {
		key, val string
		dst      *time.Duration
	}{{"interval", rf.Interval, &f.Interval}, {"timeout", rf.Timeout, &f.Timeout}} {
		if d.val == "" {
			continue
		}
		v, err := time.ParseDuration(d.val)
		if err != nil || v <= 0 {
			return nil, errAt(at("crl_fetch", d.key), "crl_fetch: %s %q: want a positive duration such as 1h or 5s", d.key, d.val)
		}
		*d.dst = v
	}
	if f.Interval < time.Minute {
		return nil, errAt(at("crl_fetch", "interval"), "crl_fetch: interval %s is below 1m: a PKI publishes CRLs for hours or days, and a short interval only loads its server", f.Interval)
	}
	if f.Timeout > f.Interval {
		return nil, errAt(at("crl_fetch", "timeout"), "crl_fetch: timeout %s is longer than interval %s", f.Timeout, f.Interval)
	}
	for i, s := range rf.URLs {
		if err := checkFetchURL(s); err != nil {
			return nil, errAt(at("crl_fetch", "urls"), "crl_fetch: urls[%d] %q: %v", i, s, err)
		}
		if slices.Contains(f.URLs, s) {
			return nil, errAt(at("crl_fetch", "urls"), "crl_fetch: urls[%d] %q is listed twice", i, s)
		}
		f.URLs = append(f.URLs, s)
	}
	return f, nil
}

// checkFetchURL admits a URL certplane may fetch a CRL from.
func checkFetchURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("want an http:// or https:// URL (LDAP and file URLs are not fetched)")
	}
	if u.Host == "" {
		return errors.New("the URL has no host")
	}
	if u.User != nil {
		return errors.New("credentials in the URL are refused: they would be logged and shown on /status")
	}
	return nil
}

// resolveTrustStores checks the trust_stores entries of every file against
// the trust stores and each other, and puts the valid crl_fetch settings
// in the model.
func (r *resolver) resolveTrustStores(files []*ConfigFile) {
	seen := map[string]*CRLFetch{}
	for _, cf := range files {
		r.m.Problems = append(r.m.Problems, cf.trustErrs...)
		for _, f := range cf.CRLFetch {
			if first := seen[f.Store]; first != nil {
				r.m.Problems = append(r.m.Problems, problemOf("", lineErr(f.File, f.Line,
					fmt.Errorf("trust_stores: %q: crl_fetch is already set at %s:%d; set it once", f.Store, first.File, first.Line))))
				continue
			}
			seen[f.Store] = f
			if r.m.Trust[f.Store] == nil && r.trust.bad[f.Store] == nil {
				r.m.Problems = append(r.m.Problems, problemOf("", lineErr(f.File, f.Line,
					fmt.Errorf("trust_stores: %q: no trust store certs/trust/%s: nothing to fetch CRLs for", f.Store, f.Store))))
				continue
			}
			r.m.CRLFetch = append(r.m.CRLFetch, f)
		}
	}
	slices.SortFunc(r.m.CRLFetch, func(a, b *CRLFetch) int { return strings.Compare(a.Store, b.Store) })
}

// FetchedCRLDir is where crlfetch writes the CRLs of each store under a
// state directory: DIR/<store>/<issuer>.crl.
func FetchedCRLDir(stateDir string) string { return filepath.Join(stateDir, "fetched-crl") }

// fetchedInputs reads the fetched CRLs of one store (l.FetchedDir/<store>/
// *.crl), as more files of that store: the same admission as any dropped
// CRL file, the same rollback guard. A store without fetched CRLs gives
// nothing.
func (l Loader) fetchedInputs(store string) []trustInput {
	if l.FetchedDir == "" {
		return nil
	}
	dir := filepath.Join(l.FetchedDir, store)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return []trustInput{{path: dir, err: fileErr(dir, fmt.Errorf("cannot read the fetched CRLs: %w", unwrapPathError(err)))}}
	}
	var in []trustInput
	for _, e := range entries {
		if e.IsDir() || ignoredName(e.Name()) || filepath.Ext(e.Name()) != ".crl" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, info, err := readFile(p, maxStateFile)
		in = append(in, trustInput{path: p, data: data, info: info, err: err})
	}
	return in
}
