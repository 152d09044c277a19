package crlfetch_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certplane/certplane/crl"
	"github.com/certplane/certplane/crlfetch"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/status"
)

const deadline = 10 * time.Second

// cdp is a CRL distribution point on loopback whose answer the test sets.
type cdp struct {
	srv  *httptest.Server
	mu   sync.Mutex
	body []byte
	code int
	hits atomic.Int64
}

func newCDP(t *testing.T) *cdp {
	c := &cdp{code: http.StatusOK}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.hits.Add(1)
		c.mu.Lock()
		body, code := c.body, c.code
		c.mu.Unlock()
		if r.URL.Path == "/redirect-file" {
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
			return
		}
		w.WriteHeader(code)
		w.Write(body)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *cdp) publish(body []byte, code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.body, c.code = body, code
}

// rig is a fetcher on a fake clock with one store "partners".
type rig struct {
	t       *testing.T
	clock   *crlfetch.FakeClock
	f       *crlfetch.Fetcher
	dir     string
	changed atomic.Int64
	store   crlfetch.Store
}

func newRig(t *testing.T, ca *pkitest.CA, urls ...string) *rig {
	r := &rig{t: t, clock: crlfetch.NewFakeClock(time.Now()), dir: t.TempDir()}
	f, err := crlfetch.New(crlfetch.Options{
		Dir: r.dir, MaxSize: 64 << 10, Clock: r.clock,
		Jitter:  func(d time.Duration) time.Duration { return d },
		Changed: func() { r.changed.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.f = f
	r.store = crlfetch.Store{Name: "partners", CAs: []*x509.Certificate{ca.Cert}, URLs: urls, Interval: time.Hour, Timeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// round runs one fetch round after step moves the clock (Configure when
// step is zero and configure is set) and waits for its end.
func (r *rig) round(step time.Duration) {
	r.t.Helper()
	ch := r.f.Rounds()
	if step > 0 {
		r.clock.Advance(step)
	} else {
		r.f.Configure([]crlfetch.Store{r.store}, true)
	}
	r.wait(ch)
}

func (r *rig) wait(ch <-chan struct{}) {
	r.t.Helper()
	select {
	case <-ch:
	case <-time.After(deadline):
		r.t.Fatal("no fetch round within the deadline")
	}
}

func (r *rig) row() status.CRLFetch {
	r.t.Helper()
	rows := r.f.Status()
	if len(rows) != 1 {
		r.t.Fatalf("status rows: %+v, want 1", rows)
	}
	return rows[0]
}

// kept is the CRL number kept on disk for the store, "" if none.
func (r *rig) kept() string {
	r.t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.dir, "partners", "*.crl"))
	if len(files) == 0 {
		return ""
	}
	if len(files) > 1 {
		r.t.Fatalf("fetched CRLs: %v, want one per CA", files)
	}
	der, err := os.ReadFile(files[0])
	if err != nil {
		r.t.Fatal(err)
	}
	s, err := crl.Parse(der, nil)
	if err != nil {
		r.t.Fatalf("kept CRL: %v", err)
	}
	return s.Number.String()
}

// TestFetchAdmitRefresh: a CRL published at the URL is fetched, admitted,
// written and announced; a newer one replaces it at the next interval; an
// older one, a foreign one, an expired one and an oversized one are each
// refused with their reason and the last good stays; PEM and DER both work.
func TestFetchAdmitRefresh(t *testing.T) {
	ca := pkitest.NewCA(t, "Partner Root")
	alice := ca.Client("alice")
	c := newCDP(t)
	r := newRig(t, ca, c.srv.URL+"/ca.crl")

	c.publish(ca.CRL(pkitest.CRLNumber(5)), http.StatusOK) // DER
	r.round(0)
	if got := r.kept(); got != "5" {
		t.Fatalf("kept CRL number %q, want 5", got)
	}
	if r.changed.Load() != 1 {
		t.Fatalf("Changed called %d times, want 1", r.changed.Load())
	}
	if row := r.row(); row.State != "ok" || row.Number != "5" || row.LastSuccess.IsZero() {
		t.Fatalf("status row %+v", row)
	}

	// The same CRL again: nothing written, nothing announced.
	r.round(time.Hour)
	if r.changed.Load() != 1 {
		t.Fatalf("an unchanged CRL announced a change")
	}

	// Republished with alice revoked, in PEM: fetched at the next interval.
	c.publish(ca.CRLPEM(pkitest.CRLNumber(6), pkitest.CRLRevoked(alice)), http.StatusOK)
	r.round(time.Hour)
	if got := r.kept(); got != "6" {
		t.Fatalf("kept CRL number %q, want 6", got)
	}

	for _, tc := range []struct {
		name, reason string
		body         []byte
		code         int
	}{
		{"older", crlfetch.ReasonOlder, ca.CRL(pkitest.CRLNumber(4)), http.StatusOK},
		{"foreign signer", crlfetch.ReasonNotAdmitted, ca.Impostor().CRL(pkitest.CRLNumber(9)), http.StatusOK},
		{"expired", crlfetch.ReasonExpired, ca.CRL(pkitest.CRLNumber(10), pkitest.CRLExpired()), http.StatusOK},
		{"too large", crlfetch.ReasonTooLarge, bytes.Repeat([]byte{0x30}, 65<<10), http.StatusOK},
		{"not a CRL", crlfetch.ReasonParse, []byte("<html>maintenance</html>"), http.StatusOK},
		{"server error", crlfetch.ReasonStatus, nil, http.StatusServiceUnavailable},
	} {
		c.publish(tc.body, tc.code)
		r.round(time.Hour)
		row := r.row()
		if row.State != "failing" || row.LastReason != tc.reason || row.Failures[tc.reason] == 0 {
			t.Errorf("%s: status row %+v, want failing with reason %s", tc.name, row, tc.reason)
		}
		if got := r.kept(); got != "6" {
			t.Errorf("%s: kept CRL number %q, want the last good 6", tc.name, got)
		}
	}
}

// TestFetchFailsClosedAfterNextUpdate: with the distribution point down,
// the last good CRL stays until its nextUpdate (state failing), then the
// row says stale: its CA's clients fail closed (the loader serves the
// expired CRL; see hardening TestCRLFetchBothPlanes).
func TestFetchFailsClosedAfterNextUpdate(t *testing.T) {
	ca := pkitest.NewCA(t, "Partner Root")
	c := newCDP(t)
	r := newRig(t, ca, c.srv.URL+"/ca.crl")
	now := r.clock.Now().UTC().Truncate(time.Second)
	c.publish(ca.CRL(pkitest.CRLTimes(now.Add(-time.Minute), now.Add(3*time.Hour))), http.StatusOK)
	r.round(0)
	c.srv.Close()
	r.round(2*time.Hour + 15*time.Minute)
	if row := r.row(); row.State != "failing" || row.LastReason != crlfetch.ReasonHTTP {
		t.Fatalf("status row %+v, want failing (http)", row)
	}
	if r.kept() == "" {
		t.Fatal("the last good CRL was dropped on a failed fetch")
	}
	r.round(time.Hour)
	if row := r.row(); row.State != "stale" {
		t.Fatalf("status row %+v, want stale after nextUpdate", row)
	}
}

// TestFetchRefusesRedirectToFile: a redirect may lead only to http(s).
func TestFetchRefusesRedirectToFile(t *testing.T) {
	ca := pkitest.NewCA(t, "Partner Root")
	c := newCDP(t)
	r := newRig(t, ca, c.srv.URL+"/redirect-file")
	r.round(0)
	row := r.row()
	if row.State != "failing" || !strings.Contains(row.LastError, "only http and https") {
		t.Fatalf("status row %+v", row)
	}
}

// TestDefaultURLsFromCDP: without urls, the http(s) CDPs of the store's CAs
// are fetched; LDAP and credentials are skipped.
func TestDefaultURLsFromCDP(t *testing.T) {
	ca := pkitest.NewCA(t, "Partner Root", pkitest.CRLURL("http://pki.example/root.crl", "ldap://pki.example/cn=root", "http://u:p@pki.example/x.crl"))
	got := crlfetch.URLs(crlfetch.Store{CAs: []*x509.Certificate{ca.Cert}, URLs: []string{"https://pki.example/issuing.crl"}})
	want := []string{"https://pki.example/issuing.crl", "http://pki.example/root.crl"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("URLs %v, want %v", got, want)
	}
}

// TestRefreshEarlyBeforeNextUpdate: a CRL that lives less than the
// interval is fetched again three quarters into its life, before nextUpdate.
func TestRefreshEarlyBeforeNextUpdate(t *testing.T) {
	ca := pkitest.NewCA(t, "Partner Root")
	c := newCDP(t)
	r := newRig(t, ca, c.srv.URL+"/ca.crl")
	now := r.clock.Now().UTC().Truncate(time.Second)
	c.publish(ca.CRL(pkitest.CRLTimes(now, now.Add(40*time.Minute))), http.StatusOK)
	r.round(0)
	row := r.row()
	if !row.NextFetch.Before(row.NextUpdate) || row.NextFetch.Sub(r.clock.Now()) > 31*time.Minute {
		t.Fatalf("next fetch %v, nextUpdate %v: want an early refresh 30m in", row.NextFetch, row.NextUpdate)
	}
	c.publish(ca.CRL(pkitest.CRLTimes(now.Add(30*time.Minute), now.Add(70*time.Minute))), http.StatusOK)
	r.round(30 * time.Minute)
	if got := r.row(); got.State != "ok" || !got.NextUpdate.Equal(now.Add(70*time.Minute)) {
		t.Fatalf("after the early refresh: %+v", got)
	}
}

// TestStoreThatFailsToLoadKeepsItsCRLs: a store passed without CAs (its
// directory refused for a while) neither loses its fetched CRLs nor is
// fetched; a store no longer configured loses them.
func TestStoreThatFailsToLoadKeepsItsCRLs(t *testing.T) {
	ca := pkitest.NewCA(t, "Partner Root")
	c := newCDP(t)
	r := newRig(t, ca, c.srv.URL+"/ca.crl")
	c.publish(ca.CRL(pkitest.CRLNumber(3)), http.StatusOK)
	r.round(0)
	broken := r.store
	broken.CAs = nil
	ch := r.f.Rounds()
	r.f.Configure([]crlfetch.Store{broken}, true)
	r.wait(ch)
	if r.kept() != "3" || len(r.f.Status()) != 1 {
		t.Fatalf("a store that failed to load lost its fetched CRL or its row: kept %q, rows %+v", r.kept(), r.f.Status())
	}
	ch = r.f.Rounds()
	r.f.Configure(nil, true)
	r.wait(ch)
	if r.kept() != "" || len(r.f.Status()) != 0 {
		t.Fatalf("crl_fetch removed, but its CRL stays: kept %q", r.kept())
	}
}
