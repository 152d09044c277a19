package hardening_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/controlplane"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/proxy"
	"github.com/certplane/certplane/status"
	"github.com/certplane/certplane/xds"
	"github.com/certplane/certplane/xds/client"
)

// deadline bounds every wait: an event that does not happen within it is a
// failure, never a hang.
const deadline = 15 * time.Second

// waitFor polls cond every few milliseconds until it holds or the deadline
// passes. It is how these tests wait for a version, a status or a handshake:
// never by sleeping a guessed amount.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", deadline, what)
		}
		<-tick.C
	}
}

// freePort reserves a loopback port for a listener address: config
// addresses name a real port, not :0.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// env is a good tree with two listeners, "a" and "b", each with its own
// server certificate, trust store, config file and backend, served by a real
// controlplane.Runner on loopback to a real proxy.Proxy (and to an observer
// ADS client that records exactly what is published).
type env struct {
	t  testing.TB
	tr *pkitest.Tree

	rootA, interA, rootB *pkitest.CA
	serverA, serverB     *pkitest.Leaf
	aliceA, aliceB       *pkitest.Leaf
	revokedA             *pkitest.Leaf // listed in A's issuing CA's CRL
	portA, portB         int

	cp       *controlplane.Runner
	prx      *proxy.Proxy
	xdsAddr  string
	adminURL string
	obs      *observer
	connLog  *lineLog

	// good is the good tree, path relative to Root -> content and mode.
	good map[string]goodFile
	// baseline is the hash of each of A's published resources.
	baseline map[string]string
}

type goodFile struct {
	data []byte
	mode fs.FileMode
}

// envOptions tunes the proxy under test.
type envOptions struct {
	failureLogWindow time.Duration
}

const (
	crtA    = "certs/server/a/tls.crt"
	keyA    = "certs/server/a/tls.key"
	caA     = "certs/trust/ta/ca.pem"
	crlA    = "certs/trust/ta/root.crl"
	crlIA   = "certs/trust/ta/issuing.crl"
	yamlA   = "config/a.yaml"
	crtB    = "certs/server/b/tls.crt"
	keyB    = "certs/server/b/tls.key"
	yamlB   = "config/b.yaml"
	nodePrx = "hardening-proxy"
)

func listenerYAML(name string, port int, cert, store, backend, endpoint string) string {
	return fmt.Sprintf(`listeners:
  - name: %s
    address: 127.0.0.1:%d
    certificates: [%s]
    client_auth:
      mode: verify
      trust_store: %s
    client_cert_headers: [xfcc]
    routes:
      - {path_prefix: /, backend: %s}
backends:
  - name: %s
    endpoints: ["%s"]
`, name, port, cert, store, backend, backend, endpoint)
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, tr: pkitest.NewTree(t)}
	e.rootA = pkitest.NewCA(t, "A Root")
	e.interA = e.rootA.Intermediate("A Issuing CA")
	e.rootB = pkitest.NewCA(t, "B Root")
	e.serverA = e.interA.Server("localhost", pkitest.IPs("127.0.0.1"))
	e.serverB = e.rootB.Server("localhost", pkitest.IPs("127.0.0.1"))
	e.aliceA = e.interA.Client("alice-a")
	e.aliceB = e.rootB.Client("alice-b")
	e.revokedA = e.interA.Client("revoked-a")
	e.interA.Revoke(e.revokedA)
	e.portA, e.portB = freePort(t), freePort(t)

	backend := func(name string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name)
		}))
		t.Cleanup(s.Close)
		return s.Listener.Addr().String()
	}
	e.tr.Server("a", e.serverA)
	e.tr.Server("b", e.serverB)
	e.tr.Trust("ta", "ca.pem", e.rootA.CertPEM(), e.interA.CertPEM())
	e.tr.Trust("ta", "root.crl", e.rootA.CRLPEM())
	e.tr.Trust("ta", "issuing.crl", e.interA.CRLPEM())
	e.tr.Trust("tb", "ca.pem", e.rootB.CertPEM())
	e.tr.Trust("tb", "ca.crl", e.rootB.CRLPEM())
	e.tr.WriteConfig("a.yaml", listenerYAML("a", e.portA, "a", "ta", "backend-a", backend("backend-a")))
	e.tr.WriteConfig("b.yaml", listenerYAML("b", e.portB, "b", "tb", "backend-b", backend("backend-b")))
	e.good = e.snapshotTree()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	goRun := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	reg := admin.NewRegistry()
	cp, err := controlplane.New(controlplane.Options{
		CertsDir: e.tr.Certs, ConfigDir: e.tr.Config,
		HoldOff: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond, Resync: -1,
		Registry: reg, Logger: testLogger(),
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
	e.xdsAddr = lis.Addr().String()
	goRun(func() { _ = cp.Serve(ctx, lis, creds) })

	e.connLog = &lineLog{}
	e.prx = proxy.New(proxy.Options{
		Logger:           testLogger(),
		ConnLog:          slog.New(slog.NewJSONHandler(e.connLog, nil)),
		DrainTimeout:     2 * time.Second,
		FailureLogWindow: o.failureLogWindow,
	})
	goRun(func() { _ = e.prx.Run(ctx, client.Config{Target: e.xdsAddr, NodeID: nodePrx, Insecure: true}) })

	e.obs = &observer{}
	goRun(func() {
		_ = client.Run(ctx, client.Config{Target: e.xdsAddr, NodeID: "observer", Insecure: true, OnUpdate: e.obs.update})
	})

	alis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.adminURL = "http://" + alis.Addr().String()
	h := admin.Handler(admin.Options{
		Status:   func() any { return status.Status{ControlPlane: cp.Status(), Proxy: e.prx.Status()} },
		Ready:    cp.Ready,
		Registry: reg,
	})
	goRun(func() { _ = admin.Serve(ctx, alis, h) })

	// The observer asks for endpoints after clusters: wait until it has all
	// six of A's resources, not only B's secret.
	waitFor(t, "listeners a and b served by the proxy and seen by the observer", func() bool {
		return e.prx.ListenerAddr("a") != nil && e.prx.ListenerAddr("b") != nil &&
			e.obs.secretSerial("server/b") != nil && len(e.obs.hashesA()) == 6
	})
	e.waitClean()
	e.baseline = e.obs.hashesA()
	if len(e.baseline) != 6 {
		t.Fatalf("A's published resources: %v, want 6", e.baseline)
	}
	return e
}

func testLogger() *slog.Logger {
	if testing.Verbose() && os.Getenv("CERTPLANE_HARDENING_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// path is the absolute path of a file of the tree.
func (e *env) path(rel string) string { return filepath.Join(e.tr.Root, rel) }

// write replaces a file of the tree atomically.
func (e *env) write(rel string, data []byte) string {
	e.t.Helper()
	mode := fs.FileMode(0o644)
	if strings.HasSuffix(rel, ".key") {
		mode = 0o600
	}
	return e.tr.Write(rel, data, mode)
}

// snapshotTree records every regular file under certs/ and config/.
func (e *env) snapshotTree() map[string]goodFile {
	e.t.Helper()
	out := map[string]goodFile{}
	err := filepath.WalkDir(e.tr.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(e.tr.Root, p)
			out[rel] = goodFile{data: b, mode: info.Mode().Perm()}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// restore puts the good tree back: every stray file, symlink, pipe or
// directory goes, every good file gets its good content and mode.
func (e *env) restore() {
	e.t.Helper()
	var stray []string
	_ = filepath.WalkDir(e.tr.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == e.tr.Root {
			return nil
		}
		rel, _ := filepath.Rel(e.tr.Root, p)
		if d.IsDir() {
			prefix := rel + string(filepath.Separator)
			for g := range e.good {
				if strings.HasPrefix(g, prefix) {
					return nil
				}
			}
			if rel == "certs/client" || rel == "certs/server" || rel == "certs/trust" {
				return nil
			}
			stray = append(stray, p)
			return filepath.SkipDir
		}
		if g, ok := e.good[rel]; !ok || !d.Type().IsRegular() {
			stray = append(stray, p)
		} else if info, err := d.Info(); err == nil && info.Mode().Perm() != g.mode {
			stray = append(stray, p)
		}
		return nil
	})
	for _, p := range stray {
		_ = os.Chmod(p, 0o700)
		if err := os.RemoveAll(p); err != nil {
			e.t.Fatal(err)
		}
	}
	for rel, g := range e.good {
		if b, err := os.ReadFile(e.path(rel)); err == nil && bytes.Equal(b, g.data) {
			continue
		}
		e.tr.Write(rel, g.data, g.mode)
	}
}

// rotateB issues a fresh server certificate for B, writes it, and returns
// its serial. The good tree follows: B keeps its newest certificate.
func (e *env) rotateB() *big.Int {
	e.t.Helper()
	e.serverB = e.rootB.Server("localhost", pkitest.IPs("127.0.0.1"))
	e.tr.Server("b", e.serverB)
	e.good[crtB] = goodFile{data: e.serverB.CertPEM(), mode: 0o644}
	e.good[keyB] = goodFile{data: e.serverB.KeyPEM(), mode: 0o600}
	return e.serverB.Serial()
}

// status fetches /status over HTTP, as an operator would.
func (e *env) status() status.Status {
	e.t.Helper()
	resp, err := http.Get(e.adminURL + "/status")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw struct {
		ControlPlane *status.ControlPlane `json:"control_plane"`
		Proxy        proxy.Status         `json:"proxy"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		e.t.Fatal(err)
	}
	return status.Status{ControlPlane: raw.ControlPlane, Proxy: raw.Proxy}
}

// waitServed waits until cond, a condition on the control plane alone,
// holds: it checks again after each reload (Updated), not on a timer.
func (e *env) waitServed(what string, cond func() bool) {
	e.t.Helper()
	timeout := time.After(deadline)
	for {
		updated := e.cp.Updated()
		if cond() {
			return
		}
		select {
		case <-updated:
		case <-timeout:
			e.t.Fatalf("timed out after %s waiting for %s", deadline, what)
		}
	}
}

// waitClean waits until nothing is wrong anywhere: no error or warning on
// the control plane, no resource refused by the proxy, and A published
// exactly as in the baseline (once there is one).
func (e *env) waitClean() {
	e.t.Helper()
	waitFor(e.t, "a clean tree served", func() bool {
		cp := e.cp.Status()
		if len(cp.Errors) > 0 || len(cp.Warnings) > 0 || !cp.Ready {
			return false
		}
		if len(e.prx.Status().Problems) > 0 {
			return false
		}
		return e.baseline == nil || equalHashes(e.obs.hashesA(), e.baseline)
	})
}

func equalHashes(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// observer is an ADS client that records what the control plane publishes.
type observer struct {
	mu  sync.Mutex
	cur client.Resources
	// seenA is every distinct content of secret server/a ever received.
	seenA []string
}

func (o *observer) update(r client.Resources) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cur = r
	if s := r.Secrets["server/a"]; s != nil {
		h := hashOf(s)
		if !slices.Contains(o.seenA, h) {
			o.seenA = append(o.seenA, h)
		}
	}
}

func hashOf(m proto.Message) string {
	if m == nil {
		return ""
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:8])
}

// hashesA hashes each of listener A's published resources.
func (o *observer) hashesA() map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]string{}
	add := func(k string, m proto.Message, ok bool) {
		if ok {
			out[k] = hashOf(m)
		}
	}
	l, ok := o.cur.Listeners["a"]
	add("listener/a", l, ok)
	r, ok := o.cur.Routes["a"]
	add("route/a", r, ok)
	c, ok := o.cur.Clusters["backend-a"]
	add("cluster/backend-a", c, ok)
	ep, ok := o.cur.Endpoints["backend-a"]
	add("endpoints/backend-a", ep, ok)
	s, ok := o.cur.Secrets["server/a"]
	add("secret/server/a", s, ok)
	ts, ok := o.cur.Secrets["trust/ta"]
	add("secret/trust/ta", ts, ok)
	return out
}

// secretSerial is the serial of the leaf of a published key-pair secret.
func (o *observer) secretSerial(name string) *big.Int {
	o.mu.Lock()
	s := o.cur.Secrets[name]
	o.mu.Unlock()
	if s == nil {
		return nil
	}
	block, _ := pem.Decode(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
	if block == nil {
		return nil
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil
	}
	return c.SerialNumber
}

func (o *observer) seenAHashes() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seenA...)
}

// handshake connects to a proxy listener with a client certificate and
// returns the serial of the server certificate it presented.
func handshake(port int, roots *pkitest.CA, cert *pkitest.Leaf) (*big.Int, error) {
	pool := x509.NewCertPool()
	pool.AddCert(roots.Cert)
	for _, c := range roots.Chain {
		pool.AddCert(c)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS()}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// TLS 1.3: the server's verdict on the client certificate arrives after
	// the client's handshake returns; one read surfaces a refusal.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			return nil, err
		}
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// lineLog collects JSON log lines, safe for concurrent writers.
type lineLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []map[string]any
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		var m map[string]any
		if json.Unmarshal(l.buf.Bytes()[:i], &m) == nil {
			l.lines = append(l.lines, m)
		}
		l.buf.Next(i + 1)
	}
	return len(p), nil
}

// since returns the lines logged after the first n.
func (l *lineLog) since(n int) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.lines[n:]...)
}

func (l *lineLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}
