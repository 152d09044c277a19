package hardening_test

import (
	"bufio"
	"context"
	"crypto"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/controlplane"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/proxy"
	"github.com/certplane/certplane/xds"
	"github.com/certplane/certplane/xds/client"
)

// Issue 15, OCSP for client certificates (certplane proxy): a real
// `openssl ocsp` responder on loopback, OpenSSL-made client certificates
// naming it in their Authority Information Access.

// osslPKI is a CA made with the openssl command, its clients, and a
// delegated OCSP responder certificate (id-kp-OCSPSigning).
type osslPKI struct {
	dir      string
	ocspPort int
	clients  map[string]*pkitest.Leaf
	serials  map[string]string // hex, as index.txt wants it
}

func runOpenSSL(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newOsslPKI(t *testing.T, names ...string) *osslPKI {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	p := &osslPKI{dir: t.TempDir(), ocspPort: freePort(t), clients: map[string]*pkitest.Leaf{}, serials: map[string]string{}}
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"}
	runOpenSSL(t, p.dir, append([]string{"req", "-x509", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=OpenSSL Partner CA", "-days", "30",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"}, ec...)...)
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(p.dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("client.ext", fmt.Sprintf(`basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
authorityInfoAccess=OCSP;URI:http://127.0.0.1:%d
crlDistributionPoints=URI:http://127.0.0.1:%d/ca.crl
`, p.ocspPort, p.ocspPort))
	write("responder.ext", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=OCSPSigning\n")
	issue := func(name, ext string, serial int) {
		runOpenSSL(t, p.dir, append([]string{"req", "-new", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name}, ec...)...)
		runOpenSSL(t, p.dir, "x509", "-req", "-in", name+".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", fmt.Sprint(serial),
			"-days", "30", "-extfile", ext, "-out", name+".crt")
		p.serials[name] = fmt.Sprintf("%04X", serial)
	}
	issue("responder", "responder.ext", 0x0fff)
	for i, n := range names {
		issue(n, "client.ext", 0x1001+i)
		kp, err := tls.LoadX509KeyPair(filepath.Join(p.dir, n+".crt"), filepath.Join(p.dir, n+".key"))
		if err != nil {
			t.Fatal(err)
		}
		p.clients[n] = &pkitest.Leaf{Leaf: &pki.Leaf{Cert: kp.Leaf, Key: kp.PrivateKey.(crypto.Signer)}}
	}
	return p
}

func (p *osslPKI) read(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join(p.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// responder runs `openssl ocsp` on p.ocspPort with an index that lists
// good and revoked as such (any other certificate is unknown), signed by
// signer (a cert/key pair in p.dir: "responder" delegated, or "ca").
// stop ends it.
func (p *osslPKI) responder(t *testing.T, signer string, good, revoked []string) (stop func()) {
	t.Helper()
	exp := time.Now().Add(30 * 24 * time.Hour).UTC().Format("060102150405Z")
	rev := time.Now().Add(-time.Hour).UTC().Format("060102150405Z")
	var idx strings.Builder
	for _, n := range good {
		fmt.Fprintf(&idx, "V\t%s\t\t%s\tunknown\t/CN=%s\n", exp, p.serials[n], n)
	}
	for _, n := range revoked {
		fmt.Fprintf(&idx, "R\t%s\t%s\t%s\tunknown\t/CN=%s\n", exp, rev, p.serials[n], n)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "index.txt"), []byte(idx.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "openssl", "ocsp", "-index", "index.txt", "-port", fmt.Sprint(p.ocspPort), // OpenSSL 3.0 takes a port only: it binds every interface
		"-rsigner", signer+".crt", "-rkey", signer+".key", "-CA", "ca.crt", "-ignore_err")
	cmd.Dir = p.dir
	// It says when it listens; a probe connection would end it (an empty
	// request makes openssl ocsp exit).
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errPipe)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "waiting for OCSP client connections") {
				once.Do(func() { close(ready) })
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	select {
	case <-ready:
	case <-done:
		t.Fatal("openssl ocsp exited before it listened")
	case <-time.After(deadline):
		t.Fatal("openssl ocsp did not listen within the deadline")
	}
	return stop
}

const ocspYAML = `listeners:
  - name: strict
    address: 127.0.0.1:%d
    certificates: [https]
    client_auth: {mode: verify, trust_store: partners, ocsp: {mode: require, timeout: 3s}}
    routes:
      - {path_prefix: /, backend: app}
  - name: lenient
    address: 127.0.0.1:%d
    certificates: [https]
    client_auth: {mode: verify, trust_store: partners, ocsp: {mode: best_effort, timeout: 3s}}
    routes:
      - {path_prefix: /, backend: app}
backends:
  - name: app
    endpoints: ["%s"]
`

// TestOCSPProxy: require admits only a good answer; best_effort admits an
// unknown certificate and a down responder but never a revoked one; a
// certificate revoked at the responder is refused at its next handshake
// with the alert certificate_revoked.
func TestOCSPProxy(t *testing.T) {
	p := newOsslPKI(t, "alice", "mallory", "stranger")
	alice, mallory, stranger := p.clients["alice"], p.clients["mallory"], p.clients["stranger"]
	tr := pkitest.NewTree(t)
	serverCA := pkitest.NewCA(t, "Server CA")
	tr.Server("https", serverCA.Server("localhost", pkitest.IPs("127.0.0.1")))
	tr.Trust("partners", "ca.pem", p.read(t, "ca.crt"))
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	strict, lenient := freePort(t), freePort(t)
	tr.WriteConfig("ocsp.yaml", fmt.Sprintf(ocspYAML, strict, lenient, backend.Listener.Addr().String()))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	goRun := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	cp, err := controlplane.New(controlplane.Options{
		CertsDir: tr.Certs, ConfigDir: tr.Config, ProxyOnly: true,
		HoldOff: 5 * time.Millisecond, Resync: -1, Registry: admin.NewRegistry(), Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	goRun(func() { _ = cp.Run(ctx) })
	lis, creds, err := xds.Listen("127.0.0.1:0", xds.Security{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	goRun(func() { _ = cp.Serve(ctx, lis, creds) })
	connLog := &lineLog{}
	prx := proxy.New(proxy.Options{Logger: testLogger(), ConnLog: slog.New(slog.NewJSONHandler(connLog, nil)), FailureLogWindow: -1, DrainTimeout: time.Second})
	goRun(func() { _ = prx.Run(ctx, client.Config{Target: lis.Addr().String(), NodeID: "proxy", Insecure: true}) })
	waitFor(t, "both listeners served", func() bool { return prx.ListenerAddr("strict") != nil && prx.ListenerAddr("lenient") != nil })

	// A refusal in TLS 1.3 reaches the client after its handshake
	// returns, and an OCSP lookup takes a while: a request tells.
	verdict := func(port int, c *pkitest.Leaf) error {
		hc := &http.Client{Timeout: deadline, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: serverCA.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{c.TLS()},
		}}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	want := func(what string, port int, c *pkitest.Leaf, admitted bool, alert string) {
		t.Helper()
		err := verdict(port, c)
		switch {
		case admitted && err != nil:
			t.Errorf("%s: refused: %v", what, err)
		case !admitted && err == nil:
			t.Errorf("%s: admitted", what)
		case !admitted && alert != "" && !strings.Contains(err.Error(), alert):
			t.Errorf("%s: refused with %v, want the alert %q", what, err, alert)
		}
	}

	// A delegated responder (id-kp-OCSPSigning, issued by the CA).
	stop := p.responder(t, "responder", []string{"alice"}, []string{"mallory"})
	want("require, good", strict, alice, true, "")
	want("require, revoked", strict, mallory, false, "revoked certificate")
	want("require, unknown", strict, stranger, false, "unknown certificate")
	want("best_effort, good", lenient, alice, true, "")
	want("best_effort, revoked", lenient, mallory, false, "revoked certificate")
	want("best_effort, unknown", lenient, stranger, true, "")

	// Revoked at the CA: refused at the next handshake. The CA signs the
	// answers itself this time.
	stop()
	stop = p.responder(t, "ca", nil, []string{"alice", "mallory"})
	want("require, alice revoked", strict, alice, false, "revoked certificate")

	// The responder is down.
	stop()
	want("require, responder down", strict, alice, false, "unknown certificate")
	want("best_effort, responder down", lenient, stranger, true, "")

	reasons := map[string]bool{}
	for _, l := range connLog.since(0) {
		if r, ok := l["transport_failure"].(string); ok {
			t.Logf("%v: %v", r, l["error"])
			reasons[r] = true
		}
	}
	for _, r := range []string{"ocsp_revoked", "ocsp_unknown", "ocsp_unavailable"} {
		if !reasons[r] {
			t.Errorf("no handshake logged with transport_failure %s (got %v)", r, reasons)
		}
	}
}
