package controlplane

import (
	"path/filepath"
	"strings"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/crlfetch"
)

// newFetcher builds the CRL fetcher of trust_stores[].crl_fetch. It runs
// beside Run's loop and never publishes: it writes what it admits into the
// state directory, where the loader reads it, and asks for a reload, so a
// fetched CRL takes the one serialized path of every change.
func newFetcher(o Options, reload func()) (*crlfetch.Fetcher, error) {
	dir := ""
	if o.StateDir != "" {
		dir = config.FetchedCRLDir(o.StateDir)
	}
	maxSize := int64(config.DefaultMaxTrustFileSize)
	return crlfetch.New(crlfetch.Options{
		Dir: dir, MaxSize: maxSize, Clock: o.Fetch.Clock, Jitter: o.Fetch.Jitter,
		Registry: o.Registry, Logger: o.Logger.With("component", "crlfetch"), Changed: reload,
	})
}

// configureFetch hands the fetcher the crl_fetch settings of m, with the
// CAs of each store as served. A store whose trust directory is refused
// is passed without CAs: nothing is fetched for it and its fetched CRLs
// stay until it loads again. Fetched CRLs of stores that lost crl_fetch are
// removed only when every config file loaded: a typo elsewhere must not
// take a store's CRLs away.
func (r *Runner) configureFetch(m *config.Model) {
	var stores []crlfetch.Store
	for _, f := range m.CRLFetch {
		s := crlfetch.Store{Name: f.Store, URLs: f.URLs, Interval: f.Interval, Timeout: f.Timeout}
		if ts := m.Trust[f.Store]; ts != nil {
			s.CAs = ts.CAs
		}
		stores = append(stores, s)
	}
	r.fetch.Configure(stores, r.configComplete(m))
}

// configComplete reports whether no config file has a file-wide problem.
func (r *Runner) configComplete(m *config.Model) bool {
	dir := filepath.Clean(r.opts.ConfigDir) + string(filepath.Separator)
	for _, p := range m.Problems {
		if p.Listener == "" && strings.HasPrefix(filepath.Clean(p.File), dir) {
			return false
		}
	}
	return true
}
