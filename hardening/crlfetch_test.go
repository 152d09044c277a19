package hardening_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/controlplane"
	"github.com/certplane/certplane/crlfetch"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/proxy"
	"github.com/certplane/certplane/xds"
	"github.com/certplane/certplane/xds/client"
)

// Issue 15, CRLs fetched from distribution points: a revoked client is
// refused on both planes after the CA republishes its CRL, without anyone
// touching the certs directory.

// crlServer is the CA's distribution point on loopback.
type crlServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	body []byte
	code int
}

func newCRLServer(t *testing.T) *crlServer {
	s := &crlServer{code: http.StatusOK}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, code := s.body, s.code
		s.mu.Unlock()
		w.WriteHeader(code)
		w.Write(body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *crlServer) publish(body []byte, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.code = body, code
}

// fetchEnv is a control plane with crl_fetch on a fake clock, the proxy
// and an Envoy-like observer, all in process.
type fetchEnv struct {
	t          *testing.T
	tr         *pkitest.Tree
	serverCA   *pkitest.CA
	ca         *pkitest.CA
	alice, bob *pkitest.Leaf
	cdp        *crlServer
	clock      *crlfetch.FakeClock
	stateDir   string
	port       int
	backend    string
	// loaderNow, when set, is the loader's clock too.
	loaderNow func() time.Time

	cp   *controlplane.Runner
	prx  *proxy.Proxy
	obs  *crlObserver
	stop func()
}

const fetchYAML = `trust_stores:
  - name: partners
    crl_fetch: {interval: 1h, timeout: 5s}
listeners:
  - name: https
    address: 127.0.0.1:%d
    certificates: [https]
    client_auth: {mode: verify, trust_store: partners}
    routes:
      - {path_prefix: /, backend: app}
backends:
  - name: app
    endpoints: ["%s"]
`

func newFetchEnv(t *testing.T) *fetchEnv {
	e := &fetchEnv{t: t, tr: pkitest.NewTree(t), cdp: newCRLServer(t), stateDir: t.TempDir(), port: freePort(t)}
	e.clock = crlfetch.NewFakeClock(time.Now())
	e.serverCA = pkitest.NewCA(t, "Server CA")
	// The CA names its own CRL in its CDP, as `pki ca --crl-url` does:
	// crl_fetch needs no urls.
	e.ca = pkitest.NewCA(t, "Partner Root", pkitest.CRLURL(e.cdp.srv.URL+"/partner-root.crl"))
	e.alice, e.bob = e.ca.Client("alice"), e.ca.Client("bob")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	e.backend = backend.Listener.Addr().String()
	e.tr.Server("https", e.serverCA.Server("localhost", pkitest.IPs("127.0.0.1")))
	e.tr.Trust("partners", "ca.pem", e.ca.CertPEM()) // no CRL file: only the fetched one
	e.tr.WriteConfig("https.yaml", fmt.Sprintf(fetchYAML, e.port, e.backend))
	return e
}

// start runs the control plane, the proxy and the observer.
func (e *fetchEnv) start() {
	t := e.t
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	goRun := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	cp, err := controlplane.New(controlplane.Options{
		CertsDir: e.tr.Certs, ConfigDir: e.tr.Config, StateDir: e.stateDir,
		HoldOff: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond, Resync: -1,
		Registry: admin.NewRegistry(), Logger: testLogger(),
		Fetch: controlplane.FetchOptions{Clock: e.clock, Jitter: func(d time.Duration) time.Duration { return d }, Now: e.loaderNow},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.cp = cp
	goRun(func() { _ = cp.Run(ctx) })
	lis, creds, err := xds.Listen("127.0.0.1:0", xds.Security{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	goRun(func() { _ = cp.Serve(ctx, lis, creds) })
	e.prx = proxy.New(proxy.Options{Logger: testLogger(), DrainTimeout: time.Second})
	goRun(func() {
		_ = e.prx.Run(ctx, client.Config{Target: lis.Addr().String(), NodeID: "proxy", Insecure: true})
	})
	e.obs = &crlObserver{}
	goRun(func() {
		_ = client.Run(ctx, client.Config{Target: lis.Addr().String(), NodeID: "observer", Insecure: true, OnUpdate: e.obs.update})
	})
	e.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(e.stop)
}

// admitted reports whether the proxy lets c complete a handshake.
func (e *fetchEnv) admitted(c *pkitest.Leaf) bool {
	_, err := handshake(e.port, e.serverCA, c)
	return err == nil
}

// waitCRL waits until both planes apply CRL number n: the Envoy plane's
// Secret carries it, and the proxy gives every client its verdict.
func (e *fetchEnv) waitCRL(n int64, verdicts map[*pkitest.Leaf]bool) {
	e.t.Helper()
	waitFor(e.t, fmt.Sprintf("the trust/partners Secret with CRL number %d", n), func() bool { return e.obs.numberNow() == n })
	waitFor(e.t, fmt.Sprintf("the proxy's verdicts %v", verdicts), func() bool {
		for c, ok := range verdicts {
			if e.admitted(c) != ok {
				return false
			}
		}
		return true
	})
}

// advance moves the fetcher's clock and waits for the fetch round it causes.
func (e *fetchEnv) advance(d time.Duration) {
	e.t.Helper()
	// Any round will do: the one d triggers ends after this channel is taken.
	select {
	case <-e.cp.Loaded():
	case <-time.After(deadline):
		e.t.Fatal("the control plane did not load")
	}
	e.clock.Advance(d)
}

// crlObserver is an ADS client subscribed as Envoy is; it keeps every
// resource hash and the CRL number of the Secret trust/partners.
type crlObserver struct {
	mu     sync.Mutex
	cur    client.Resources
	number int64
}

func (o *crlObserver) update(r client.Resources) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cur = r
	o.number = 0
	s := r.Secrets["trust/partners"]
	if s == nil {
		return
	}
	if b, _ := pem.Decode(s.GetValidationContext().GetCrl().GetInlineBytes()); b != nil {
		if rl, err := x509.ParseRevocationList(b.Bytes); err == nil && rl.Number != nil {
			o.number = rl.Number.Int64()
		}
	}
}

func (o *crlObserver) numberNow() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.number
}

// hashes hashes every resource the observer holds, by type/name.
func (o *crlObserver) hashes() map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]string{}
	for n, m := range o.cur.Listeners {
		out["listener/"+n] = hashOf(m)
	}
	for n, m := range o.cur.Routes {
		out["route/"+n] = hashOf(m)
	}
	for n, m := range o.cur.Clusters {
		out["cluster/"+n] = hashOf(m)
	}
	for n, m := range o.cur.Endpoints {
		out["endpoints/"+n] = hashOf(m)
	}
	for n, m := range o.cur.Secrets {
		out["secret/"+n] = hashOf(m)
	}
	return out
}

// TestCRLFetchBothPlanes: the CA republishes its CRL with alice revoked;
// at the next interval both planes refuse her (the Envoy plane: only the
// Secret trust/partners changes; the proxy: the handshake fails). After a
// restart with the distribution point down, the CRL kept in the state
// directory is served before any fetch. The fetch keeps failing: the last
// good CRL stays, and /status says so.
func TestCRLFetchBothPlanes(t *testing.T) {
	e := newFetchEnv(t)
	e.cdp.publish(e.ca.CRL(pkitest.CRLNumber(1)), http.StatusOK)
	e.start()
	e.waitCRL(1, map[*pkitest.Leaf]bool{e.alice: true, e.bob: true})
	before := e.obs.hashes()

	e.cdp.publish(e.ca.CRLPEM(pkitest.CRLNumber(2), pkitest.CRLRevoked(e.alice)), http.StatusOK)
	e.advance(time.Hour)
	e.waitCRL(2, map[*pkitest.Leaf]bool{e.alice: false, e.bob: true})
	after := e.obs.hashes()
	for k, h := range before {
		changed := after[k] != h
		if changed != (k == "secret/trust/partners") {
			t.Errorf("%s changed=%v: a fetched CRL must change only the Secret trust/partners", k, changed)
		}
	}
	if len(after) != len(before) {
		t.Errorf("resources before %v, after %v", before, after)
	}

	// Restart with the distribution point down: the kept CRL is served
	// from the first snapshot on.
	e.stop()
	e.cdp.publish(nil, http.StatusServiceUnavailable)
	e.start()
	<-e.cp.Loaded()
	if n := crlNumberServed(e.cp); n != "2" {
		t.Fatalf("after a restart, the first snapshot serves CRL number %q, want 2 (kept in the state directory)", n)
	}
	e.waitCRL(2, map[*pkitest.Leaf]bool{e.alice: false, e.bob: true})
	waitFor(t, "a failing crl_fetch row on /status", func() bool {
		rows := e.cp.Status().CRLFetch
		return len(rows) == 1 && rows[0].State == "failing" && rows[0].LastReason == crlfetch.ReasonStatus
	})
}

// crlNumberServed is the CRL number the control plane serves for the
// store, from its status.
func crlNumberServed(cp *controlplane.Runner) string {
	for _, ts := range cp.Status().TrustStores {
		if ts.Name == "partners" && len(ts.CRLs) == 1 {
			return ts.CRLs[0].Number
		}
	}
	return ""
}

// TestCRLFetchRefusesOlder: a distribution point that goes back to an
// older CRL (a stale mirror, a replay) never takes a revocation back.
func TestCRLFetchRefusesOlder(t *testing.T) {
	e := newFetchEnv(t)
	e.cdp.publish(e.ca.CRL(pkitest.CRLNumber(7), pkitest.CRLRevoked(e.alice)), http.StatusOK)
	e.start()
	e.waitCRL(7, map[*pkitest.Leaf]bool{e.alice: false, e.bob: true})
	e.cdp.publish(e.ca.CRL(pkitest.CRLNumber(6)), http.StatusOK)
	e.advance(time.Hour)
	waitFor(t, "the older CRL refused on /status", func() bool {
		rows := e.cp.Status().CRLFetch
		return len(rows) == 1 && rows[0].LastReason == crlfetch.ReasonOlder && strings.Contains(rows[0].LastError, "older")
	})
	if n := e.obs.numberNow(); n != 7 {
		t.Fatalf("the Secret carries CRL number %d after an older fetch, want 7", n)
	}
	if e.admitted(e.alice) {
		t.Fatal("alice admitted after the distribution point served an older CRL")
	}
}

// TestCRLFetchFailClosedAfterNextUpdate: the distribution point goes down;
// the last good CRL is served, with a warning, until its nextUpdate; after
// it the control plane still serves that CRL (so Envoy and the proxy refuse
// its CA's clients: an expired CRL fails closed on both, as a dropped one
// does), reports the error, and the fetch row says stale.
func TestCRLFetchFailClosedAfterNextUpdate(t *testing.T) {
	e := newFetchEnv(t)
	e.loaderNow = e.clock.Now
	now := e.clock.Now().UTC().Truncate(time.Second)
	e.cdp.publish(e.ca.CRL(pkitest.CRLNumber(3), pkitest.CRLTimes(now.Add(-time.Minute), now.Add(3*time.Hour))), http.StatusOK)
	e.start()
	e.waitCRL(3, map[*pkitest.Leaf]bool{e.alice: true, e.bob: true})

	e.cdp.publish(nil, http.StatusNotFound)
	e.advance(time.Hour)
	waitFor(t, "a failing fetch row", func() bool {
		rows := e.cp.Status().CRLFetch
		return len(rows) == 1 && rows[0].State == "failing" && rows[0].LastReason == crlfetch.ReasonStatus
	})
	if n := crlNumberServed(e.cp); n != "3" {
		t.Fatalf("the last good CRL is not served while the fetch fails: number %q", n)
	}

	e.advance(3 * time.Hour)
	waitFor(t, "a stale fetch row", func() bool {
		rows := e.cp.Status().CRLFetch
		return len(rows) == 1 && rows[0].State == "stale"
	})
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if _, err := e.cp.ReloadWait(ctx); err != nil {
		t.Fatal(err)
	}
	st := e.cp.Status()
	found := false
	for _, p := range st.Errors {
		found = found || strings.Contains(p.Reason, "an expired CRL fails closed")
	}
	if !found {
		t.Fatalf("no expired-CRL error on /status after nextUpdate: %+v", st.Errors)
	}
	if n := crlNumberServed(e.cp); n != "3" {
		t.Fatalf("after nextUpdate the expired CRL must stay served (fail closed), got number %q", n)
	}
	if e.obs.numberNow() != 3 {
		t.Fatalf("the Secret lost its CRL after nextUpdate: fail open")
	}
}
