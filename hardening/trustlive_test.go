package hardening_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certplane/certplane/internal/rope"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/status"
	"github.com/certplane/certplane/xds/client"
)

// The trust-store tests of issue #11 (items 1, 2, 3 and the store cap) run
// on the real binaries as an operator runs them: `certplane serve` with an
// ADS client subscribed as Envoy is (the Envoy plane: the validation-context
// Secret it receives), and `certplane proxy --xds` fed by that serve (the
// bundled plane: real handshakes).

// propagation bounds the time from a file write to both planes applying it:
// far below the 30 s resync (and the tests set the resync to an hour).
const propagation = 5 * time.Second

// trustTree is one listener "https" verifying clients against trust store
// "clients", which holds two independent CAs, A and B, each in its own CA
// file with its own CRL file.
type trustTree struct {
	*pkitest.Tree
	serverCA, a, b   *pkitest.CA
	alice, amy, bob  *pkitest.Leaf // alice, amy from A; bob from B
	carol            *pkitest.Leaf // from B
	port             int
	aCRL, bCRL, bPEM string // absolute paths
}

func newTrustTree(t *testing.T) *trustTree {
	t.Helper()
	tt := &trustTree{Tree: pkitest.NewTree(t)}
	tt.serverCA = pkitest.NewCA(t, "Server CA")
	tt.a, tt.b = pkitest.NewCA(t, "A Root"), pkitest.NewCA(t, "B Root")
	tt.alice, tt.amy = tt.a.Client("alice"), tt.a.Client("amy")
	tt.bob, tt.carol = tt.b.Client("bob"), tt.b.Client("carol")
	tt.port = freePort(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	tt.Server("https", tt.serverCA.Server("localhost", pkitest.IPs("127.0.0.1")))
	tt.Trust("clients", "a.pem", tt.a.CertPEM())
	tt.bPEM = tt.Trust("clients", "b.pem", tt.b.CertPEM())
	tt.aCRL = tt.Trust("clients", "a.crl", tt.a.CRLPEM())
	tt.bCRL = tt.Trust("clients", "b.crl", tt.b.CRLPEM())
	tt.WriteConfig("https.yaml", listenerYAML("https", tt.port, "https", "clients", "app", backend.Listener.Addr().String()))
	return tt
}

// admitted reports whether the proxy lets c complete a handshake.
func (tt *trustTree) admitted(c *pkitest.Leaf) bool {
	_, err := handshake(tt.port, tt.serverCA, c)
	return err == nil
}

// waitVerdicts waits until every client gets its verdict from the proxy.
func (tt *trustTree) waitVerdicts(t *testing.T, within time.Duration, want map[*pkitest.Leaf]bool) {
	t.Helper()
	waitWithin(t, within, func() (bool, string) {
		bad := []string{}
		for c, ok := range want {
			if tt.admitted(c) != ok {
				bad = append(bad, fmt.Sprintf("%s admitted=%v", c.Cert.Subject.CommonName, !ok))
			}
		}
		return len(bad) == 0, "the proxy gives " + strings.Join(bad, ", ")
	})
}

// waitWithin polls cond until it holds, and fails with cond's account of
// the state it saw when within passes.
func waitWithin(t *testing.T, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", within, state)
		}
		<-tick.C
	}
}

// proc is one running certplane process.
type proc struct {
	cmd   *exec.Cmd
	lines <-chan string // stderr; closed when the process has exited
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	lines, cmd := startBin(t, nil, args...)
	return &proc{cmd: cmd, lines: lines}
}

// kill stops the process at once, as a crash or an OOM kill would: what it
// remembers across restarts must already be on disk. Its stderr closing is
// its exit (startBin's cleanup reaps it).
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	timeout := time.After(deadline)
	for {
		select {
		case _, ok := <-p.lines:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("process did not exit after SIGKILL")
		}
	}
}

// planes is `certplane serve` with an ADS observer, and `certplane proxy`
// fed by it.
type planes struct {
	t         *testing.T
	tt        *trustTree
	sock      string
	adminPort int
	serveArgs []string
	serve     *proc
	proxy     *proc
	obs       *trustObserver
}

func startPlanes(t *testing.T, tt *trustTree, extra ...string) *planes {
	t.Helper()
	certplaneBin(t)
	dir, err := os.MkdirTemp("", "cpt") // short: a unix socket path holds 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &planes{t: t, tt: tt, sock: filepath.Join(dir, "xds.sock"), adminPort: freePort(t)}
	p.serveArgs = append([]string{"serve", "--certs", tt.Certs, "--config", tt.Config,
		"--xds-address", "unix://" + p.sock, "--admin-address", fmt.Sprintf("127.0.0.1:%d", p.adminPort),
		"--debounce", "5ms", "--resync", "1h", "--log-level", "debug"}, extra...)
	p.startServe()
	p.proxy = startProc(t, "proxy", "--xds", "unix://"+p.sock, "--admin-address", "", "--drain-timeout", "1s")
	p.observe()
	tt.waitVerdicts(t, deadline, map[*pkitest.Leaf]bool{tt.alice: true, tt.bob: true})
	return p
}

// observe subscribes a fresh ADS client to serve, as a new Envoy would: a
// client that resumes with the versions it has gets nothing from a serve
// whose versions did not change.
func (p *planes) observe() {
	p.t.Helper()
	p.obs = &trustObserver{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = client.Run(ctx, client.Config{Target: "unix://" + p.sock, NodeID: fmt.Sprintf("observer-%p", p.obs), OnUpdate: p.obs.update,
			Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
	}()
	p.t.Cleanup(func() { cancel(); wg.Wait() })
}

func (p *planes) startServe() {
	p.t.Helper()
	p.serve = startProc(p.t, p.serveArgs...)
	waitLine(p.t, p.serve.lines, `"msg":"xds listening"`)
}

// settle waits until serve has logged no reload for a while: the reloads
// that a burst of file events causes are over. It waits for a non-event,
// so a bounded quiet period is the only possible check.
func (p *planes) settle() {
	p.t.Helper()
	const quiet = 300 * time.Millisecond
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		select {
		case l, ok := <-p.serve.lines:
			if !ok {
				p.t.Fatal("serve exited")
			}
			_ = l
		case <-time.After(quiet):
			return
		}
	}
	p.t.Fatalf("serve kept logging for %v", deadline)
}

// restartServe kills serve and starts it again with the same flags.
func (p *planes) restartServe() {
	p.t.Helper()
	p.serve.kill(p.t)
	p.startServe()
	p.observe()
}

// status is serve's /status, as an operator fetches it.
func (p *planes) status() *status.ControlPlane {
	p.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", p.adminPort))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var raw struct {
		ControlPlane *status.ControlPlane `json:"control_plane"`
	}
	if json.NewDecoder(resp.Body).Decode(&raw) != nil {
		return nil
	}
	return raw.ControlPlane
}

// waitProblem waits until serve's /status lists an error (or a warning)
// whose text holds every part.
func (p *planes) waitProblem(warning bool, parts ...string) {
	p.t.Helper()
	waitFor(p.t, fmt.Sprintf("a /status problem (warning %v) with %q", warning, parts), func() bool {
		return p.hasProblem(warning, parts...)
	})
}

// hasProblem reports whether serve's /status lists an error (or a warning)
// whose text holds every part.
func (p *planes) hasProblem(warning bool, parts ...string) bool {
	st := p.status()
	if st == nil {
		return false
	}
	list := st.Errors
	if warning {
		list = st.Warnings
	}
	for _, pr := range list {
		all := true
		for _, s := range parts {
			all = all && strings.Contains(pr.Reason, s)
		}
		if all {
			return true
		}
	}
	return false
}

// trustObserver is an ADS client subscribed to serve as Envoy is; it keeps
// the CRLs of the last validation-context Secret of store "clients".
type trustObserver struct {
	mu   sync.Mutex
	crls map[string]*x509.RevocationList // by issuer CN
	raw  []byte                          // the Secret's CRL bytes as received
}

func (o *trustObserver) update(r client.Resources) {
	s := r.Secrets["trust/clients"]
	if s == nil {
		return
	}
	crls := map[string]*x509.RevocationList{}
	rest := s.GetValidationContext().GetCrl().GetInlineBytes()
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if rl, err := x509.ParseRevocationList(b.Bytes); err == nil {
			crls[rl.Issuer.CommonName] = rl
		}
	}
	o.mu.Lock()
	o.crls = crls
	o.raw = s.GetValidationContext().GetCrl().GetInlineBytes()
	o.mu.Unlock()
}

// number is the CRL number of issuer cn's CRL in the Secret, nil if none.
func (o *trustObserver) number(cn string) *big.Int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if rl := o.crls[cn]; rl != nil {
		return rl.Number
	}
	return nil
}

// waitNumber waits until the Secret carries CRL number n for issuer cn.
func (o *trustObserver) waitNumber(t *testing.T, within time.Duration, cn string, n *big.Int) {
	t.Helper()
	waitWithin(t, within, func() (bool, string) {
		got := o.number(cn)
		return got != nil && got.Cmp(n) == 0,
			fmt.Sprintf("the validation-context Secret of store clients carries CRL number %v for %s, want %v", got, cn, n)
	})
}

// crlNumberOf parses the CRL number out of a PEM CRL.
func crlNumberOf(t *testing.T, pemCRL []byte) *big.Int {
	t.Helper()
	b, _ := pem.Decode(pemCRL)
	rl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return rl.Number
}

// checkNames runs `certplane check` and wants exit 1 with every part in its
// output.
func checkNames(t *testing.T, tt *trustTree, parts ...string) {
	t.Helper()
	checkWith(t, tt, nil, parts...)
}

// checkWith is checkNames with more flags.
func checkWith(t *testing.T, tt *trustTree, flags []string, parts ...string) {
	t.Helper()
	out, code := runCLI(t, append([]string{"check", "--certs", tt.Certs, "--config", tt.Config}, flags...)...)
	if code != 1 {
		t.Errorf("certplane check exit %d, want 1:\n%s", code, out)
	}
	for _, s := range parts {
		if !strings.Contains(out, s) {
			t.Errorf("certplane check output lacks %q:\n%s", s, out)
		}
	}
}

// TestOneBadCRLDoesNotFreezeTheStore is issue #11 item 1: B's CRL expires
// (or turns to garbage) and A then revokes a client: A's new CRL must reach
// both planes at once, B's clients fail closed (expired) or keep B's last
// good CRL (garbage), and the bad file is named on /status and by check.
func TestOneBadCRLDoesNotFreezeTheStore(t *testing.T) {
	tt := newTrustTree(t)
	p := startPlanes(t, tt)

	t.Run("expired CRL of B", func(t *testing.T) {
		p.t = t
		tt.Write("certs/trust/clients/b.crl", tt.b.CRLPEM(pkitest.CRLExpired()), 0o644)
		p.waitProblem(false, tt.bCRL, "expired on")
		newA := tt.a.CRLPEM(pkitest.CRLRevoked(tt.alice))
		start := time.Now()
		tt.Write("certs/trust/clients/a.crl", newA, 0o644)
		p.obs.waitNumber(t, propagation, "A Root", crlNumberOf(t, newA))
		tt.waitVerdicts(t, propagation-time.Since(start), map[*pkitest.Leaf]bool{tt.alice: false, tt.amy: true, tt.bob: false})
		t.Logf("A's new CRL applied on both planes %v after the write, with B's CRL expired", time.Since(start).Round(time.Millisecond))
		p.waitProblem(false, tt.bCRL, "expired on")
		checkNames(t, tt, tt.bCRL, "expired on")
	})

	t.Run("garbage over B's CRL, and a garbage CRL file dropped in", func(t *testing.T) {
		p.t = t
		goodB := tt.b.CRLPEM(pkitest.CRLRevoked(tt.carol))
		tt.Write("certs/trust/clients/b.crl", goodB, 0o644)
		p.obs.waitNumber(t, deadline, "B Root", crlNumberOf(t, goodB))
		tt.waitVerdicts(t, deadline, map[*pkitest.Leaf]bool{tt.bob: true, tt.carol: false})

		tt.Write("certs/trust/clients/b.crl", []byte("-----BEGIN X509 CRL-----\nnot base64\n"), 0o644)
		junk := tt.Write("certs/trust/clients/junk.crl", []byte{0x30, 0x03, 0x02, 0x01, 0x01}, 0o644)
		p.waitProblem(false, tt.bCRL, "malformed or truncated PEM block")
		p.waitProblem(false, junk, "not a PEM or DER CRL")

		newA := tt.a.CRLPEM(pkitest.CRLRevoked(tt.alice, tt.amy))
		start := time.Now()
		tt.Write("certs/trust/clients/a.crl", newA, 0o644)
		p.obs.waitNumber(t, propagation, "A Root", crlNumberOf(t, newA))
		tt.waitVerdicts(t, propagation-time.Since(start), map[*pkitest.Leaf]bool{tt.alice: false, tt.amy: false, tt.bob: true, tt.carol: false})
		t.Logf("A's new CRL applied on both planes %v after the write, with garbage over B's CRL", time.Since(start).Round(time.Millisecond))
		// B's last good CRL is what Envoy still gets.
		if n := p.obs.number("B Root"); n == nil || n.Cmp(crlNumberOf(t, goodB)) != 0 {
			t.Errorf("B's CRL in the Secret: number %v, want the last good %v", n, crlNumberOf(t, goodB))
		}
		checkNames(t, tt, tt.bCRL, junk)
	})
}

// TestCRLRollbackRefused is issue #11 item 2 within one serve process: an
// older CRL of A copied over the newer one is refused on both planes, the
// file and both numbers are named; a deleted CRL file leaves A's newest CRL
// served, with a warning that names A and the way out.
func TestCRLRollbackRefused(t *testing.T) {
	tt := newTrustTree(t)
	p := startPlanes(t, tt)
	_, newN := rollback(t, tt, p)

	// The CRL file deleted while A stays: A's newest CRL is still served,
	// with a warning naming A and the way out.
	tt.Remove("certs/trust/clients/a.crl")
	p.waitProblem(true, "CN=A Root", "remove the CA")
	if n := p.obs.number("A Root"); n == nil || n.Cmp(newN) != 0 {
		t.Errorf("after deleting a.crl the Secret carries A's CRL number %v, want %v", n, newN)
	}
	tt.waitVerdicts(t, propagation, map[*pkitest.Leaf]bool{tt.alice: false, tt.amy: true})
}

// TestCRLRollbackRefusedAcrossRestart is item 2 with --state-dir: the
// refusal survives a restart of serve by SIGKILL (what is remembered is on
// disk before it is served), and check reads the same state read-only.
func TestCRLRollbackRefusedAcrossRestart(t *testing.T) {
	tt := newTrustTree(t)
	state := filepath.Join(t.TempDir(), "state")
	p := startPlanes(t, tt, "--state-dir", state)
	oldN, newN := rollback(t, tt, p)
	numbers := []string{tt.aCRL, "CRL number " + oldN.String(), "CRL number " + newN.String()}
	checkWith(t, tt, []string{"--state-dir", state}, numbers...)

	p.restartServe()
	p.obs.waitNumber(t, deadline, "A Root", newN)
	p.waitProblem(false, tt.aCRL, "CRL number "+oldN.String(), "CRL number "+newN.String())
	tt.waitVerdicts(t, deadline, map[*pkitest.Leaf]bool{tt.alice: false, tt.amy: true})
	checkWith(t, tt, []string{"--state-dir", state}, numbers...)
}

// rollback serves A's CRL n, then n+1 revoking alice, then copies n back:
// both planes must keep n+1, and /status and check name the file and both
// numbers. It returns both numbers.
func rollback(t *testing.T, tt *trustTree, p *planes) (oldN, newN *big.Int) {
	t.Helper()

	older := tt.a.CRLPEM()
	tt.Write("certs/trust/clients/a.crl", older, 0o644)
	p.obs.waitNumber(t, deadline, "A Root", crlNumberOf(t, older))
	newer := tt.a.CRLPEM(pkitest.CRLRevoked(tt.alice))
	tt.Write("certs/trust/clients/a.crl", newer, 0o644)
	p.obs.waitNumber(t, deadline, "A Root", crlNumberOf(t, newer))
	tt.waitVerdicts(t, deadline, map[*pkitest.Leaf]bool{tt.alice: false, tt.amy: true})

	oldN, newN = crlNumberOf(t, older), crlNumberOf(t, newer)
	tt.Write("certs/trust/clients/a.crl", older, 0o644)
	waitWithin(t, deadline, func() (bool, string) {
		if n := p.obs.number("A Root"); n != nil && n.Cmp(oldN) == 0 {
			t.Fatalf("rollback served: the Secret went back to A's CRL number %v (from %v); alice admitted by the proxy: %v", n, newN, tt.admitted(tt.alice))
		}
		return p.hasProblem(false, tt.aCRL, "CRL number "+oldN.String(), "CRL number "+newN.String()), "no /status error names a.crl with both numbers"
	})
	if n := p.obs.number("A Root"); n == nil || n.Cmp(newN) != 0 {
		t.Errorf("after the rollback the Secret carries A's CRL number %v, want %v", n, newN)
	}
	tt.waitVerdicts(t, propagation, map[*pkitest.Leaf]bool{tt.alice: false, tt.amy: true})
	return oldN, newN
}

// TestRecreatedCertsDirectory is issue #11 item 3: the certificate
// directory, then one trust store directory, then the config directory are
// moved away and copied back; the next revocation (and the next config
// change) applies within the propagation bound, while the resync is an hour.
func TestRecreatedCertsDirectory(t *testing.T) {
	tt := newTrustTree(t)
	p := startPlanes(t, tt)
	recreate := func(dir string) {
		t.Helper()
		if err := os.Rename(dir, dir+".old"); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", dir+".old", dir).CombinedOutput(); err != nil {
			t.Fatalf("cp -a: %v: %s", err, out)
		}
		if err := os.RemoveAll(dir + ".old"); err != nil {
			t.Fatal(err)
		}
		p.settle()
	}
	revoke := func(what string, leaves ...*pkitest.Leaf) {
		t.Helper()
		crl := tt.a.CRLPEM(pkitest.CRLRevoked(leaves...))
		start := time.Now()
		tt.Write("certs/trust/clients/a.crl", crl, 0o644)
		p.obs.waitNumber(t, propagation, "A Root", crlNumberOf(t, crl))
		tt.waitVerdicts(t, propagation-time.Since(start), map[*pkitest.Leaf]bool{tt.alice: false, tt.bob: true})
		t.Logf("after re-creating %s: the revocation applied on both planes in %v", what, time.Since(start).Round(time.Millisecond))
	}

	recreate(tt.Certs)
	revoke("the certs directory", tt.alice)
	recreate(filepath.Join(tt.Certs, "trust", "clients"))
	revoke("the trust store directory", tt.alice, tt.amy)
	tt.waitVerdicts(t, deadline, map[*pkitest.Leaf]bool{tt.amy: false})

	recreate(tt.Config)
	port := freePort(t)
	start := time.Now()
	tt.WriteConfig("second.yaml", listenerYAML("second", port, "https", "clients", "app2", "127.0.0.1:9"))
	waitWithin(t, propagation, func() (bool, string) {
		_, err := handshake(port, tt.serverCA, tt.bob)
		return err == nil, fmt.Sprintf("a new listener in the re-created config directory is not served: %v", err)
	})
	t.Logf("after re-creating the config directory: a new listener served in %v", time.Since(start).Round(time.Millisecond))
}

// TestCRLRollbackRefusedStandaloneProxyRestart is item 2 on `certplane
// proxy` standalone with --state-dir: after a SIGKILL and a restart on the
// older CRL, revoked alice is still refused.
func TestCRLRollbackRefusedStandaloneProxyRestart(t *testing.T) {
	tt := newTrustTree(t)
	state := filepath.Join(t.TempDir(), "state")
	p := &planes{t: t, tt: tt, adminPort: freePort(t)}
	start := func() *proc {
		return startProc(t, "proxy", "--certs", tt.Certs, "--config", tt.Config, "--state-dir", state,
			"--admin-address", fmt.Sprintf("127.0.0.1:%d", p.adminPort), "--drain-timeout", "1s")
	}
	prx := start()
	tt.waitVerdicts(t, deadline, map[*pkitest.Leaf]bool{tt.alice: true, tt.amy: true})
	older := tt.a.CRLPEM()
	tt.Write("certs/trust/clients/a.crl", older, 0o644)
	newer := tt.a.CRLPEM(pkitest.CRLRevoked(tt.alice))
	tt.Write("certs/trust/clients/a.crl", newer, 0o644)
	tt.waitVerdicts(t, deadline, map[*pkitest.Leaf]bool{tt.alice: false, tt.amy: true})
	tt.Write("certs/trust/clients/a.crl", older, 0o644)
	p.waitProblem(false, tt.aCRL, "CRL number "+crlNumberOf(t, older).String(), "CRL number "+crlNumberOf(t, newer).String())

	prx.kill(t)
	start()
	tt.waitVerdicts(t, deadline, map[*pkitest.Leaf]bool{tt.amy: true})
	tt.waitVerdicts(t, propagation, map[*pkitest.Leaf]bool{tt.alice: false, tt.amy: true})
	p.waitProblem(false, tt.aCRL, "CRL number "+crlNumberOf(t, older).String(), "CRL number "+crlNumberOf(t, newer).String())
}

// TestTrustStoreCapLive is the trust-store part of issue #11 item 9 on the
// real binaries: eight sparse files of 127 MiB (each under the per-file
// limit) are refused by the store total before any is read. Both planes
// keep the store's last good version (alice admitted, then a revocation
// after the files go applies), serve's peak RSS does not grow, and check
// names the store and its largest files at once.
func TestTrustStoreCapLive(t *testing.T) {
	tt := newTrustTree(t)
	p := startPlanes(t, tt)
	peak0 := procKB(t, p.serve.cmd.Process.Pid, "VmHWM")
	dir := filepath.Join(tt.Certs, "trust", "clients")
	var huge []string
	for i := range 8 {
		f := filepath.Join(dir, fmt.Sprintf("huge%d.crl", i+1))
		fl, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := fl.Truncate(127 << 20); err != nil {
			t.Fatal(err)
		}
		fl.Close()
		huge = append(huge, f)
	}
	p.waitProblem(false, dir+":", `trust store "clients" holds`, "over the limit of 134217728 bytes", "nothing was read", "huge1.crl (133169152 bytes)")
	tt.waitVerdicts(t, deadline, map[*pkitest.Leaf]bool{tt.alice: true, tt.bob: true})
	if grew := procKB(t, p.serve.cmd.Process.Pid, "VmHWM") - peak0; grew > 64<<10 {
		t.Errorf("serve's peak RSS grew by %d MiB with %d MiB of trust files over the cap: they were read", grew>>10, 8*127)
	}
	start := time.Now()
	checkNames(t, tt, `trust store "clients" holds`, "nothing was read")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("check took %v over a store it must not read", took)
	}
	for _, f := range huge {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	crl := tt.a.CRLPEM(pkitest.CRLRevoked(tt.alice))
	tt.Write("certs/trust/clients/a.crl", crl, 0o644)
	p.obs.waitNumber(t, propagation, "A Root", crlNumberOf(t, crl))
	tt.waitVerdicts(t, propagation, map[*pkitest.Leaf]bool{tt.alice: false, tt.bob: true})
}

// TestLargeBundleWholeOnBothPlanes: with A's CRL past rope.MinBytes beside
// B's, serve holds the store's bundle as a rope (a token in the Secret,
// the CRLs sent in its place). A new CRL of B revoking bob must reach the
// ADS client whole, byte for byte A's file and B's new one, and the proxy
// must refuse bob: a token, or a truncated or partial bundle, reaching
// either plane fails this test.
func TestLargeBundleWholeOnBothPlanes(t *testing.T) {
	tt := newTrustTree(t)
	at := time.Now().Add(-time.Hour)
	for i := range 10_000 {
		tt.a.RevokeSerial(big.NewInt(int64(1e12+i)), at)
	}
	aPEM := tt.a.CRLPEM()
	if len(aPEM) < rope.MinBytes {
		t.Fatalf("A's CRL is %d bytes, under rope.MinBytes: the test does not cover ropes", len(aPEM))
	}
	tt.Write("certs/trust/clients/a.crl", aPEM, 0o644)
	p := startPlanes(t, tt)

	newB := tt.b.CRLPEM(pkitest.CRLRevoked(tt.bob))
	start := time.Now()
	tt.Write("certs/trust/clients/b.crl", newB, 0o644)
	p.obs.waitNumber(t, propagation, "B Root", crlNumberOf(t, newB))
	tt.waitVerdicts(t, propagation-time.Since(start), map[*pkitest.Leaf]bool{tt.alice: true, tt.amy: true, tt.bob: false, tt.carol: true})
	p.obs.mu.Lock()
	raw := p.obs.raw
	p.obs.mu.Unlock()
	if want := append(append([]byte{}, aPEM...), newB...); !bytes.Equal(raw, want) {
		t.Errorf("the Secret's CRL bytes (%d) are not A's CRL then B's new one (%d)", len(raw), len(want))
	}
	if n := p.obs.number("A Root"); n == nil || n.Cmp(crlNumberOf(t, aPEM)) != 0 {
		t.Errorf("A's CRL in the Secret: number %v, want %v", n, crlNumberOf(t, aPEM))
	}
}
