// Package crlfetch fetches the CRLs of trust stores from their
// distribution points (trust_stores[].crl_fetch). It writes each CRL it
// admits, atomically, into the state directory (one file per issuing CA,
// DIR/<store>/<issuer>.crl), then asks the control plane to reload: the
// loader reads that directory as one more CRL source of the store, so a
// fetched CRL goes through the same admission, rollback guard and
// serialized publish as a dropped file, and reaches Envoy over SDS like
// any other. The fetcher never touches the model.
//
// A failed fetch changes nothing on disk: the last good CRL is served
// until its nextUpdate, after which its CA's clients fail closed exactly as
// with an expired dropped CRL.
package crlfetch

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certplane/certplane/crl"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/status"
)

// Store is one trust store whose CRLs are fetched.
type Store struct {
	Name string
	// CAs are the store's CAs: a fetched CRL must be issued by one. None:
	// the store did not load; nothing is fetched and nothing removed.
	CAs []*x509.Certificate
	// URLs are fetched besides the http(s) CRL Distribution Points of CAs.
	URLs              []string
	Interval, Timeout time.Duration
}

// Options configures a Fetcher.
type Options struct {
	// Dir receives the fetched CRLs (config.FetchedCRLDir of the state
	// directory). Empty: nothing is fetched, and every store reports
	// ReasonNoStateDir.
	Dir string
	// MaxSize bounds one CRL as the loader bounds a trust file.
	MaxSize int64
	Client  *http.Client // nil: http(s) only, bounded redirects
	Clock   Clock        // nil: the wall clock
	// Jitter returns the delay actually waited for a refresh due in d;
	// nil adds up to 10% at random, so that many serves do not fetch in step.
	Jitter   func(d time.Duration) time.Duration
	Registry prometheus.Registerer // nil: no metrics
	Logger   *slog.Logger
	// Changed is called after a fetched CRL file is written or removed:
	// the control plane's Reload.
	Changed func()
}

// Fetcher fetches the configured stores' CRLs on schedule.
type Fetcher struct {
	o       Options
	metrics *metrics
	kick    chan struct{}

	mu      sync.Mutex
	targets map[targetKey]*target
	rounds  chan struct{} // closed, and replaced, after every fetch round
}

type targetKey struct{ store, url string }

// target is one URL of one store.
type target struct {
	store    Store
	url      string
	due      time.Time
	attempt  time.Time
	success  time.Time
	lastErr  error
	failures map[string]uint64
	last     *crl.Summary // the last good CRL fetched from url
	file     string
}

// New returns a Fetcher; Run runs it.
func New(o Options) (*Fetcher, error) {
	if o.Client == nil {
		o.Client = newClient()
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Changed == nil {
		o.Changed = func() {}
	}
	if o.Jitter == nil {
		o.Jitter = func(d time.Duration) time.Duration { return d + rand.N(d/10+1) }
	}
	f := &Fetcher{o: o, kick: make(chan struct{}, 1), targets: map[targetKey]*target{}, rounds: make(chan struct{})}
	var err error
	if f.metrics, err = newMetrics(o.Registry); err != nil {
		return nil, err
	}
	return f, nil
}

// Configure sets the stores to fetch, after each reload. A store or URL
// seen for the first time is fetched at once. prune removes the fetched
// CRLs of stores no longer configured: the caller passes it only when every
// config file parsed, so that a typo elsewhere never drops a store's CRLs.
func (f *Fetcher) Configure(stores []Store, prune bool) {
	now := f.o.Clock.Now()
	f.mu.Lock()
	seen := map[targetKey]bool{}
	names := map[string]bool{}
	for _, s := range stores {
		names[s.Name] = true
		if len(s.CAs) == 0 {
			// The store did not load: nothing to verify against. Keep
			// what it had (targets, files) until it loads again.
			for k := range f.targets {
				if k.store == s.Name {
					seen[k] = true
				}
			}
			continue
		}
		for _, u := range URLs(s) {
			k := targetKey{s.Name, u}
			seen[k] = true
			t := f.targets[k]
			if t == nil {
				t = &target{url: u, due: now, failures: map[string]uint64{}}
				f.targets[k] = t
			}
			t.store = s
		}
	}
	for k := range f.targets {
		if !seen[k] {
			delete(f.targets, k)
			f.metrics.forget(k.store, k.url)
		}
	}
	f.mu.Unlock()
	changed := false
	if prune {
		changed = f.prune(names)
	}
	for _, s := range stores {
		changed = f.pruneIssuers(s) || changed
	}
	if changed {
		f.o.Changed()
	}
	f.Kick()
}

// URLs are the URLs fetched for s: its own, then the http(s) CRL
// Distribution Points of its CAs, each once.
func URLs(s Store) []string {
	out := slices.Clone(s.URLs)
	for _, ca := range s.CAs {
		for _, u := range ca.CRLDistributionPoints {
			p, err := url.Parse(u)
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil {
				continue
			}
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}

// prune removes the fetched CRLs of the stores not in names.
func (f *Fetcher) prune(names map[string]bool) bool {
	if f.o.Dir == "" {
		return false
	}
	entries, err := os.ReadDir(f.o.Dir)
	if err != nil {
		return false
	}
	changed := false
	for _, e := range entries {
		if !e.IsDir() || names[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(f.o.Dir, e.Name())); err != nil {
			f.o.Logger.Warn("cannot remove the fetched CRLs of a store without crl_fetch", "store", e.Name(), "err", err)
			continue
		}
		f.o.Logger.Info("crl_fetch removed: its fetched CRLs are removed; the newest CRL of each CA stays remembered", "store", e.Name())
		changed = true
	}
	return changed
}

// pruneIssuers removes the fetched CRLs of CAs that left s: they would no
// longer verify, and a CRL file that fails takes its store's CRLs with it.
func (f *Fetcher) pruneIssuers(s Store) bool {
	if f.o.Dir == "" || len(s.CAs) == 0 {
		return false
	}
	keep := map[string]bool{}
	for _, ca := range s.CAs {
		keep[fileName(ca)] = true
	}
	entries, err := os.ReadDir(filepath.Join(f.o.Dir, s.Name))
	if err != nil {
		return false
	}
	changed := false
	for _, e := range entries {
		if e.IsDir() || keep[e.Name()] || filepath.Ext(e.Name()) != ".crl" {
			continue
		}
		if os.Remove(filepath.Join(f.o.Dir, s.Name, e.Name())) == nil {
			changed = true
		}
	}
	return changed
}

// Kick runs a fetch round now for what is due.
func (f *Fetcher) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Rounds returns a channel closed when the next fetch round ends: tests
// take it, move the clock, and wait on it.
func (f *Fetcher) Rounds() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rounds
}

// Run fetches what is due, then sleeps until the next due time, a Kick or
// ctx's end.
func (f *Fetcher) Run(ctx context.Context) {
	for {
		next := f.round(ctx)
		var wake <-chan time.Time
		if !next.IsZero() {
			wake = f.o.Clock.At(next)
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-f.kick:
		}
	}
}

// round fetches every due target, one at a time (each bounded by its
// timeout), and returns the next due time (zero: nothing configured).
func (f *Fetcher) round(ctx context.Context) time.Time {
	defer func() {
		f.mu.Lock()
		close(f.rounds)
		f.rounds = make(chan struct{})
		f.mu.Unlock()
	}()
	now := f.o.Clock.Now()
	f.mu.Lock()
	var due []*target
	for _, t := range f.targets {
		if !t.due.After(now) {
			due = append(due, t)
		}
	}
	f.mu.Unlock()
	slices.SortFunc(due, func(a, b *target) int {
		return strings.Compare(a.store.Name+" "+a.url, b.store.Name+" "+b.url)
	})
	changed := false
	for _, t := range due {
		if ctx.Err() != nil {
			return time.Time{}
		}
		changed = f.fetch(ctx, t) || changed
	}
	if changed {
		f.o.Changed()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var next time.Time
	for _, t := range f.targets {
		if next.IsZero() || t.due.Before(next) {
			next = t.due
		}
	}
	return next
}

// fetch fetches one target, admits and stores what it got, and schedules
// the next fetch. It reports whether a CRL file changed.
func (f *Fetcher) fetch(ctx context.Context, t *target) bool {
	f.mu.Lock()
	s, u := t.store, t.url
	f.mu.Unlock()
	start := f.o.Clock.Now()
	sum, file, changed, err := f.fetchOne(ctx, s, u, start)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.targets[targetKey{s.Name, u}] != t {
		return changed // unconfigured meanwhile
	}
	t.attempt = start
	log := f.o.Logger.With("store", s.Name, "url", redact(u))
	if err != nil {
		reason := reasonOf(err)
		t.failures[reason]++
		t.lastErr = err
		f.metrics.failed(s.Name, u, reason)
		t.due = start.Add(f.o.Jitter(retryDelay(s)))
		attrs := []any{"reason", reason, "err", err.Error()}
		if t.last != nil && !t.last.NextUpdate.IsZero() {
			attrs = append(attrs, "last_good_next_update", t.last.NextUpdate.UTC().Format(time.RFC3339))
			if !start.Before(t.last.NextUpdate) {
				log.Error("CRL fetch failed and the last good CRL has expired: clients of its CA are refused (fail closed) until a fresh CRL is fetched", attrs...)
				return changed
			}
		}
		log.Warn("CRL fetch failed; the last good CRL is served until its nextUpdate, then clients of its CA are refused", attrs...)
		return changed
	}
	if t.lastErr != nil {
		log.Info("CRL fetch recovered")
	}
	t.lastErr, t.success, t.last, t.file = nil, start, sum, file
	f.metrics.succeeded(s.Name, u, start, sum.NextUpdate)
	t.due = start.Add(f.o.Jitter(refreshDelay(s, sum, start)))
	if changed {
		log.Info("CRL fetched", "issuer", sum.Issuer, "number", numberString(sum), "next_update", sum.NextUpdate.UTC().Format(time.RFC3339), "file", file)
	}
	return changed
}

// fetchOne gets u and admits the CRL against s's CAs with crl.Admit, the
// rule of every dropped CRL file, refusing what the loader would only
// serve to fail closed (expired, not yet valid) and anything older than
// the CRL kept for its CA. A CRL that passes is written atomically.
func (f *Fetcher) fetchOne(ctx context.Context, s Store, u string, now time.Time) (*crl.Summary, string, bool, error) {
	if f.o.Dir == "" {
		return nil, "", false, fail(ReasonNoStateDir, "no state directory: give serve (or proxy) --state-dir; crl_fetch keeps the fetched CRLs there so that a restart serves them")
	}
	body, err := get(ctx, f.o.Client, u, s.Timeout, f.o.MaxSize)
	if err != nil {
		return nil, "", false, err
	}
	der, err := decode(body)
	if err != nil {
		return nil, "", false, err
	}
	sum, err := crl.Parse(der, nil)
	if err != nil {
		return nil, "", false, fail(ReasonParse, "not a CRL: %w", err)
	}
	issuer, problems, err := crl.Admit(sum, s.CAs, now)
	if err != nil {
		return nil, "", false, fail(ReasonNotAdmitted, "CRL of %s refused: %w", sum.Issuer, err)
	}
	for _, p := range problems {
		switch {
		case errors.Is(p, crl.ErrExpired):
			return nil, "", false, fail(ReasonExpired, "CRL of %s refused: %w; the distribution point serves a stale CRL", sum.Issuer, p)
		case errors.Is(p, crl.ErrNotYetValid):
			return nil, "", false, fail(ReasonNotYetValid, "CRL of %s refused: %w", sum.Issuer, p)
		}
	}
	file := filepath.Join(f.o.Dir, s.Name, fileName(issuer))
	if cur := readKept(file); cur != nil {
		if cur.SHA256 == sum.SHA256 {
			return sum, file, false, nil
		}
		if !crl.Newer(sum, cur) {
			if crl.Newer(cur, sum) {
				return nil, "", false, fail(ReasonOlder, "CRL of %s (number %s, thisUpdate %s) is older than the one kept (number %s, thisUpdate %s): refused, revocation never goes backwards",
					sum.Issuer, numberString(sum), sum.ThisUpdate.UTC().Format(time.RFC3339), numberString(cur), cur.ThisUpdate.UTC().Format(time.RFC3339))
			}
			// A re-signed copy of the same CRL: keep the one on disk.
			return sum, file, false, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, "", false, fail(ReasonWrite, "%w", err)
	}
	if err := pki.WriteFileAtomic(file, der, 0o600); err != nil {
		return nil, "", false, fail(ReasonWrite, "%w", err)
	}
	return sum, file, true, nil
}

// readKept parses the CRL kept in file, nil if none can be read.
func readKept(file string) *crl.Summary {
	der, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return nil
	}
	s, err := crl.Parse(der, nil)
	if err != nil {
		return nil
	}
	return s
}

// fileName names the fetched CRL of one issuing CA.
func fileName(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.Raw)
	return hex.EncodeToString(sum[:12]) + ".crl"
}

// minRefresh keeps a CRL with a very short life from being fetched in a
// loop.
const minRefresh = 30 * time.Second

// refreshDelay is the time to the next fetch after a success: the
// interval, or earlier, three quarters into the CRL's validity, so that a
// fresh CRL is there well before nextUpdate.
func refreshDelay(s Store, sum *crl.Summary, now time.Time) time.Duration {
	d := s.Interval
	if !sum.NextUpdate.IsZero() && sum.NextUpdate.After(sum.ThisUpdate) {
		early := sum.ThisUpdate.Add(sum.NextUpdate.Sub(sum.ThisUpdate) * 3 / 4)
		if e := early.Sub(now); e < d {
			d = e
		}
	}
	return max(d, minRefresh)
}

// retryDelay is the time to the next attempt after a failure.
func retryDelay(s Store) time.Duration {
	return min(s.Interval, max(s.Interval/10, minRefresh, 2*s.Timeout))
}

func numberString(s *crl.Summary) string {
	if s.Number == nil {
		return ""
	}
	return s.Number.String()
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Redacted()
}

// Status is one row per fetched URL, by store then URL.
func (f *Fetcher) Status() []status.CRLFetch {
	now := f.o.Clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]status.CRLFetch, 0, len(f.targets))
	for k, t := range f.targets {
		row := status.CRLFetch{Store: k.store, URL: redact(k.url), LastAttempt: t.attempt, LastSuccess: t.success, NextFetch: t.due, File: t.file}
		if len(t.failures) > 0 {
			row.Failures = map[string]uint64{}
			for r, n := range t.failures {
				row.Failures[r] = n
			}
		}
		if t.last != nil {
			row.Issuer, row.Number, row.NextUpdate = t.last.Issuer, numberString(t.last), t.last.NextUpdate
		}
		switch {
		case t.lastErr != nil && t.last != nil && !t.last.NextUpdate.IsZero() && !now.Before(t.last.NextUpdate):
			row.State = "stale"
		case t.lastErr != nil:
			row.State = "failing"
		case t.attempt.IsZero():
			row.State = "pending"
		default:
			row.State = "ok"
		}
		if t.lastErr != nil {
			row.LastError, row.LastReason = t.lastErr.Error(), reasonOf(t.lastErr)
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b status.CRLFetch) int {
		if c := strings.Compare(a.Store, b.Store); c != 0 {
			return c
		}
		return strings.Compare(a.URL, b.URL)
	})
	return out
}

// String is for logs.
func (k targetKey) String() string { return fmt.Sprintf("%s %s", k.store, k.url) }
