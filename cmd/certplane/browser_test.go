package main

// Browser tests: Debian's chromium, headless, against a real `certplane
// proxy` (standalone) serving a `certplane init` directory with two demo
// backends. They install chromium and libnss3-tools when missing (as root,
// with apt-get); otherwise they skip and say why.
//
// TestBrowserClientCertificate writes a managed Chromium policy under
// /etc/chromium/policies/managed/ (Chromium reads policies only from there)
// and removes it when it ends.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certplane/certplane/demobackend"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "copy the status page screenshot to docs/status-page.png")

// chromiumPolicyDir is where Debian's chromium reads managed policies.
const chromiumPolicyDir = "/etc/chromium/policies/managed"

var browserTools = sync.OnceValues(installBrowserTools)

// installBrowserTools finds chromium, certutil and pk12util, installing
// the Debian packages that provide them when they are missing.
func installBrowserTools() (string, error) {
	missing := func() []string {
		var pkgs []string
		if _, err := exec.LookPath("chromium"); err != nil {
			pkgs = append(pkgs, "chromium")
		}
		_, e1 := exec.LookPath("certutil")
		_, e2 := exec.LookPath("pk12util")
		if e1 != nil || e2 != nil {
			pkgs = append(pkgs, "libnss3-tools")
		}
		return pkgs
	}
	if pkgs := missing(); len(pkgs) > 0 {
		apt, err := exec.LookPath("apt-get")
		if err != nil || os.Geteuid() != 0 {
			return "", fmt.Errorf("%s missing and cannot be installed here (needs root and apt-get): apt-get install -y %s", strings.Join(pkgs, ", "), strings.Join(pkgs, " "))
		}
		install := func() ([]byte, error) {
			cmd := exec.Command(apt, append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			return cmd.CombinedOutput()
		}
		if _, err := install(); err != nil {
			// A fresh machine may have no package lists yet.
			if upd, uerr := exec.Command(apt, "update").CombinedOutput(); uerr != nil {
				return "", fmt.Errorf("apt-get update: %v\n%s", uerr, upd)
			}
			if out, err := install(); err != nil {
				return "", fmt.Errorf("apt-get install %s: %v\n%s", strings.Join(pkgs, " "), err, out)
			}
		}
		if pkgs := missing(); len(pkgs) > 0 {
			return "", fmt.Errorf("still missing after apt-get install: %s", strings.Join(pkgs, ", "))
		}
	}
	return exec.LookPath("chromium")
}

func needBrowser(t *testing.T) string {
	t.Helper()
	path, err := browserTools()
	if err != nil {
		t.Skipf("browser test skipped: %v", err)
	}
	return path
}

// chromium runs one headless Chromium with a fresh profile: HOME is home, so
// its NSS database is home/.pki/nssdb.
type chromium struct {
	path, home string
}

func newChromium(t *testing.T, path string) *chromium {
	home := t.TempDir()
	return &chromium{path: path, home: home}
}

// run loads url with extra flags and returns stdout. Every run gets a new
// user data dir; the NSS database in HOME is what carries over.
func (c *chromium) run(t *testing.T, url string, extra ...string) string {
	t.Helper()
	out, _ := c.run2(t, url, extra...)
	return out
}

// run2 is run, returning stderr too: headless Chromium reports a failed
// page load there ("Page load failed: net::ERR_...") and dumps no DOM.
func (c *chromium) run2(t *testing.T, url string, extra ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(),
	}, extra...)
	args = append(args, url)
	cmd := exec.CommandContext(ctx, c.path, args...)
	cmd.Env = append(os.Environ(), "HOME="+c.home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

// nss runs certutil or pk12util on the profile's NSS database.
func (c *chromium) nss(t *testing.T, tool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Env = append(os.Environ(), "HOME="+c.home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c *chromium) db() string { return "sql:" + filepath.Join(c.home, ".pki", "nssdb") }

// newDB creates the profile's NSS database, trusting the CA at caFile for
// TLS servers ("C,,"), as an operator's browser trusts the demo CA.
func (c *chromium) newDB(t *testing.T, caFile string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(c.home, ".pki", "nssdb"), 0o700); err != nil {
		t.Fatal(err)
	}
	c.nss(t, "certutil", "-N", "--empty-password", "-d", c.db())
	c.nss(t, "certutil", "-A", "-n", "certplane example CA", "-t", "C,,", "-i", caFile, "-d", c.db())
}

// demoSetup is a `certplane init` directory served by a standalone proxy,
// with two demo backends answering "backend 1" and "backend 2".
type demoSetup struct {
	dir, listen, admin string
	connLog            *lockedBuffer
}

func startDemo(t *testing.T) *demoSetup {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var backends []string
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, name := range []string{"backend 1", "backend 2"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		backends = append(backends, ln.Addr().String())
		wg.Add(1)
		go func() { defer wg.Done(); _ = demobackend.New(name, nil).Serve(ctx, ln) }()
	}
	// The listener address goes into the config, which takes no port 0.
	var d *demoSetup
	onFreePorts(t, 2, func(addrs []string) error {
		d = &demoSetup{dir: t.TempDir(), listen: addrs[0], admin: addrs[1], connLog: &lockedBuffer{}}
		return d.startProxy(t, ctx, backends)
	})
	return d
}

// startProxy writes the example and runs the proxy on it until the test
// ends. It returns an error, with the proxy stopped, when a port of d was
// taken before the proxy bound it.
func (d *demoSetup) startProxy(t *testing.T, ctx context.Context, backends []string) error {
	t.Helper()
	if err := initDir(d.dir, initOptions{listen: d.listen, backends: backends}, time.Now()); err != nil {
		t.Fatal(err)
	}
	expiringCRL(t, d.dir)
	ctx, cancel := context.WithCancel(ctx)
	var errOut lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- runProxy(ctx, []string{
			"--certs", filepath.Join(d.dir, "certs"), "--config", filepath.Join(d.dir, "config"),
			"--admin-address", d.admin, "--drain-timeout", "1s",
			// alignTurn reads the log while the proxy runs: unbatched.
			"--log-flush-interval", "0",
		}, d.connLog, &errOut)
	}()
	// Ready: alice gets an answer (polled with a deadline: the answer is the
	// event). A listener port taken meanwhile shows in the operational log.
	deadline := time.Now().Add(20 * time.Second)
	for d.get(t, "alice") != nil {
		select {
		case err := <-done:
			cancel()
			if err != nil && portTaken(err.Error()) {
				return err
			}
			t.Fatalf("proxy ended before serving alice: %v\n%s", err, errOut.String())
		default:
		}
		if e := errOut.String(); portTaken(e) {
			cancel()
			<-done
			return errors.New(e)
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy never served alice on %s\n%s", d.listen, errOut.String())
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
		if t.Failed() {
			t.Logf("proxy stderr:\n%s", errOut.String())
		}
	})
	return nil
}

// get makes one HTTPS request as client ("alice", "mallory" or "" for no
// certificate) and reports its error.
func (d *demoSetup) get(t *testing.T, client string) error {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(d.dir, "certs", "trust", "clients", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tc := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if client != "" {
		kp, err := tls.LoadX509KeyPair(filepath.Join(d.dir, "clients", client+".crt"), filepath.Join(d.dir, "clients", client+".key"))
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
	resp, err := cl.Get("https://" + d.listen + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// TestBrowserStatusPage renders the proxy's status page in Chromium: a
// screenshot (artifact; docs/status-page.png with -update-screenshot) and a
// DOM dump that must hold the listener, its certificate, the trust store's
// CRL and the handshake chart's reasons.
func TestBrowserStatusPage(t *testing.T) {
	path := needBrowser(t)
	d := startDemo(t)
	// A few handshakes of each kind, for the chart.
	for range 6 {
		if err := d.get(t, "alice"); err != nil {
			t.Fatalf("alice: %v", err)
		}
	}
	for range 3 {
		if d.get(t, "mallory") == nil {
			t.Fatal("mallory (revoked) was answered")
		}
	}
	for range 2 {
		if d.get(t, "") == nil {
			t.Fatal("a client without a certificate was answered")
		}
	}
	// The page must show what /status says: wait until /status has counted
	// every handshake above (they are recorded after the handshake ends).
	waitStatus(t, "http://"+d.admin+"/status", func(doc map[string]any) bool {
		totals, _ := dig(doc, "proxy", "handshakes", "totals").(map[string]any)
		return totals["revoked"] == 3.0 && totals["no_certificate"] == 2.0
	})

	c := newChromium(t, path)
	url := "http://" + d.admin + "/"
	dir := t.ArtifactDir()
	shot := filepath.Join(dir, "status-page.png")
	c.run(t, url, "--hide-scrollbars", "--window-size=1280,1560", "--screenshot="+shot)
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 20000 {
		t.Fatalf("screenshot %s is not a plausible PNG (%d bytes)", shot, len(png))
	}
	t.Logf("status page screenshot: %s", shot)
	if *updateScreenshot {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "status-page.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	dom := c.run(t, url, "--dump-dom")
	if err := os.WriteFile(filepath.Join(dir, "status-page.html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<tr class="listener-row" data-listener="https">`,
		`<td><span class="mono">` + d.listen + `</span></td>`,
		`client certificates <span class="badge good">verify</span>`,
		`<tr class="cert-row" data-subject="CN=localhost">`,
		`<span class="chip">localhost</span><span class="chip ip">127.0.0.1</span>`,
		`<div class="expiry ok"`,
		`<tr class="cert-row" data-subject="CN=certplane example CA,O=certplane example">`,
		`<tr class="crl-row">`,
		`<span class="role" id="role">proxy · standalone</span>`,
		`<span class="swatch" style="background: rgb(47, 158, 68);"></span>ok<span class="count">`,
		`revoked<span class="count">3</span>`,
		`no_certificate<span class="count">2</span>`,
		`127.0.0.1`, // backend hosts
		`2/2 healthy`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("status page DOM lacks %q (DOM saved in %s)", want, dir)
		}
	}
	// The CRL was renewed for 20 days (expiringCRL): inside the default
	// threshold, so listed as expiring; the server certificate (1 year) is not.
	if !regexp.MustCompile(`<tr class="expiring-row expiring"><td><span class="badge warn">CRL nextUpdate</span></td><td>trust/clients</td>`).MatchString(dom) {
		t.Errorf("status page does not list the CRL as expiring (DOM saved in %s)", dir)
	}
	if strings.Contains(dom, `<tr class="error-row">`) {
		t.Errorf("status page shows an error on a healthy setup (DOM saved in %s)", dir)
	}
}

// TestBrowserServeStatusPage renders `certplane serve`'s page: no data plane
// in this process, so no chart, and the listener and certificate rows.
func TestBrowserServeStatusPage(t *testing.T) {
	path := needBrowser(t)
	dir := t.TempDir()
	// serve binds neither the listener nor the backends: these are names.
	if err := initDir(dir, initOptions{listen: "127.0.0.1:8443", backends: defaultInitBackends}, time.Now()); err != nil {
		t.Fatal(err)
	}
	expiringCRL(t, dir)
	sl, done, cancel := startServe(t, "--certs", filepath.Join(dir, "certs"), "--config", filepath.Join(dir, "config"),
		"--xds-address", "unix://"+filepath.Join(t.TempDir(), "xds.sock"), "--admin-address", "127.0.0.1:0")
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	admin := sl.next(t, "admin listening")["address"].(string)
	waitStatus(t, "http://"+admin+"/status", func(doc map[string]any) bool {
		return dig(doc, "control_plane", "ready") == true
	})
	dom := newChromium(t, path).run(t, "http://"+admin+"/", "--dump-dom")
	for _, want := range []string{
		`<span class="role" id="role">control plane</span>`,
		`<tr class="listener-row" data-listener="https">`,
		`<tr class="cert-row" data-subject="CN=localhost">`,
		`No data plane in this process`,
		`No node is connected.`,
		`health is checked by the data plane`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("serve status page DOM lacks %q:\n%s", want, dom)
		}
	}
}

// TestBrowserClientCertificate is the cloud guides' browser test: alice.p12
// imported into the profile's NSS database, the demo CA trusted for the
// server, the certificate auto-selected by policy; two loads are answered
// by backend 1 and backend 2. Without the certificate Chromium shows a TLS
// error page and no backend answers.
func TestBrowserClientCertificate(t *testing.T) {
	path := needBrowser(t)
	if os.Geteuid() != 0 {
		t.Skipf("browser client certificate test skipped: writing the managed policy %s needs root", chromiumPolicyDir)
	}
	d := startDemo(t)
	_, port, _ := net.SplitHostPort(d.listen)
	url := "https://localhost:" + port + "/"
	ca := filepath.Join(d.dir, "certs", "trust", "clients", "ca.pem")

	// Without a certificate: a fresh profile that trusts the CA but holds no
	// client certificate, and no policy.
	bare := newChromium(t, path)
	bare.newDB(t, ca)
	refused, errOut := bare.run2(t, url, "--dump-dom")
	if strings.Contains(refused, "backend") {
		t.Fatalf("without a client certificate a backend answered:\n%s", refused)
	}
	// The TLS error page: the server's certificate_required alert gives
	// ERR_BAD_SSL_CLIENT_AUTH_CERT. Under load Chromium sometimes reports
	// ERR_SOCKET_NOT_CONNECTED instead: the proxy closes the socket with the
	// client's first application data unread, the kernel answers with a
	// reset, and the alert is lost; rarely it reports the close itself
	// (ERR_CONNECTION_CLOSED). Either way no backend answered (checked above)
	// and the connection log below must say why (no_certificate).
	failed := regexp.MustCompile(`Page load failed: net::(ERR_BAD_SSL_CLIENT_AUTH_CERT|ERR_SOCKET_NOT_CONNECTED|ERR_CONNECTION_RESET|ERR_CONNECTION_CLOSED)\b`).FindStringSubmatch(errOut)
	if failed == nil {
		t.Errorf("without a client certificate, want Chromium's ERR_BAD_SSL_CLIENT_AUTH_CERT; stderr:\n%s\nDOM:\n%s", errOut, refused)
	} else if failed[1] != "ERR_BAD_SSL_CLIENT_AUTH_CERT" {
		t.Logf("without a client certificate Chromium reported %s: the TLS alert was lost", failed[1])
	}

	// With alice.p12 and the policy that selects it.
	c := newChromium(t, path)
	c.newDB(t, ca)
	password, err := os.ReadFile(filepath.Join(d.dir, "clients", "p12-password.txt"))
	if err != nil {
		t.Fatal(err)
	}
	c.nss(t, "pk12util", "-i", filepath.Join(d.dir, "clients", "alice.p12"), "-d", c.db(), "-W", strings.TrimSpace(string(password)))
	// The .p12's friendly name is the nickname NSS files it under (and
	// what Chromium's picker shows): alice, the common name. certutil -L -n
	// fails unless a certificate has that nickname.
	if keys := c.nss(t, "certutil", "-K", "-d", c.db()); !strings.Contains(keys, "alice") {
		t.Errorf("certutil -K: no key under nickname alice:\n%s", keys)
	}
	c.nss(t, "certutil", "-L", "-n", "alice", "-d", c.db())
	writePolicy(t, "https://localhost:"+port)

	// Two page loads in a row, as a person reloading: the demo backend's
	// page carries an inline icon, so Chromium fetches no /favicon.ico that
	// would take the other backend's round-robin turn.
	var answers []string
	for i := range 2 {
		dom := c.run(t, url, "--dump-dom")
		m := regexp.MustCompile(`<pre[^>]*>(backend [12])\n</pre>`).FindStringSubmatch(dom)
		if m == nil {
			t.Fatalf("load %d: no backend answered:\n%s", i+1, dom)
		}
		answers = append(answers, m[1])
	}
	if paths := d.requestPaths(t, "localhost:"+port); !slices.Equal(paths, []string{"/", "/"}) {
		t.Errorf("requests through the proxy for the two loads: %q, want just the two pages", paths)
	}
	if !slices.Contains(answers, "backend 1") || !slices.Contains(answers, "backend 2") {
		t.Errorf("two browser loads were answered by %v; want backend 1 and backend 2 (round robin)", answers)
	}
	log := d.connLog.String()
	if !regexp.MustCompile(`"result":"fail","[a-z_]+":"no_certificate"`).MatchString(log) {
		t.Errorf("connection log has no no_certificate handshake for the browser without a certificate:\n%s", log)
	}
	if !strings.Contains(log, `"peer_subject":"CN=alice"`) {
		t.Errorf("connection log has no handshake by alice:\n%s", log)
	}
}

// writePolicy makes Chromium select the client certificate for origin
// without asking, and removes the policy when the test ends.
func writePolicy(t *testing.T, origin string) {
	t.Helper()
	pattern, err := json.Marshal(map[string]any{"pattern": origin, "filter": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{"AutoSelectCertificateForUrls": []string{string(pattern)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(chromiumPolicyDir, 0o755); err != nil {
		t.Fatalf("create %s: %v", chromiumPolicyDir, err)
	}
	file := filepath.Join(chromiumPolicyDir, fmt.Sprintf("certplane-browser-test-%d.json", os.Getpid()))
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove policy %s: %v", file, err)
		}
	})
}

// waitStatus polls a /status URL until ok accepts the document.
func waitStatus(t *testing.T, url string, ok func(map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			var doc map[string]any
			if json.Unmarshal(b, &doc) == nil && ok(doc) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached the expected state; last:\n%s", url, last)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

// dig walks a decoded JSON document.
func dig(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// TestProxyStatusView checks, without a browser, the /status data the page
// draws on for the proxy: the handshake history by reason, the certificates
// each listener presents, the trust stores, the expiring CRL and the page.
func TestProxyStatusView(t *testing.T) {
	d := startDemo(t)
	for _, c := range []string{"alice", "mallory", "mallory", ""} {
		err := d.get(t, c)
		if (c == "alice") != (err == nil) {
			t.Fatalf("client %q: err %v", c, err)
		}
	}
	var doc map[string]any
	waitStatus(t, "http://"+d.admin+"/status", func(m map[string]any) bool {
		doc = m
		totals, _ := dig(m, "proxy", "handshakes", "totals").(map[string]any)
		return totals["revoked"] == 2.0 && totals["no_certificate"] == 1.0 && totals["ok"] != nil
	})
	if got := dig(doc, "proxy", "handshakes", "reasons"); fmt.Sprint(got) != "[ok revoked no_certificate]" {
		t.Errorf("reasons = %v", got)
	}
	ls, _ := dig(doc, "proxy", "listeners").([]any)
	if len(ls) != 1 {
		t.Fatalf("proxy listeners = %v", ls)
	}
	if got := dig(ls[0], "client_certificate"); got != "required" {
		t.Errorf("client_certificate = %v, want required", got)
	}
	certs, _ := dig(ls[0], "certificates").([]any)
	if len(certs) != 1 || dig(certs[0], "subject") != "CN=localhost" || dig(certs[0], "name") != "server/default" {
		t.Errorf("listener certificates = %v", certs)
	}
	stores, _ := dig(doc, "proxy", "trust_stores").([]any)
	if len(stores) != 1 || dig(stores[0], "name") != "trust/clients" || dig(stores[0], "ca_count") != 1.0 {
		t.Errorf("trust stores = %v", stores)
	}
	for _, section := range []string{"proxy", "control_plane"} {
		exp, _ := dig(doc, section, "expiring").([]any)
		if len(exp) != 1 || dig(exp[0], "kind") != "crl" || dig(exp[0], "state") != "expiring" || dig(exp[0], "name") != "trust/clients" {
			t.Errorf("%s expiring = %v, want the 20-day CRL only", section, exp)
		}
	}
	resp, err := http.Get("http://" + d.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`certplane_expiring_soon{kind="crl",name="trust/clients",subject="CN=certplane example CA,O=certplane example"} 1`,
		`certplane_expiring_soon{kind="server",name="server/default",subject="CN=localhost"} 0`,
		`certplane_proxy_expiring_soon{kind="crl",name="trust/clients",subject="CN=certplane example CA,O=certplane example"} 1`,
		`certplane_proxy_expiring_soon{kind="server",name="server/default",subject="CN=localhost"} 0`,
		`certplane_build_info{commit=`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	code, page := 0, ""
	if resp, err := http.Get("http://" + d.admin + "/"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, page = resp.StatusCode, string(b)
	}
	if code != http.StatusOK || !strings.Contains(page, `<script type="application/json" id="initial-status">{"control_plane":`) {
		t.Errorf("GET / = %d:\n%.300s", code, page)
	}
}

// requestPaths waits until the proxy has no open connection (every request
// is logged), then returns the paths of the requests logged for authority.
func (d *demoSetup) requestPaths(t *testing.T, authority string) []string {
	t.Helper()
	waitStatus(t, "http://"+d.admin+"/status", func(doc map[string]any) bool {
		ls, _ := dig(doc, "proxy", "listeners").([]any)
		return len(ls) == 1 && dig(ls[0], "connections") == 0.0
	})
	var paths []string
	for _, line := range strings.Split(d.connLog.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["event"] != "request" || m["authority"] != authority {
			continue
		}
		p, _ := m["path"].(string)
		paths = append(paths, p)
	}
	return paths
}

// expiringCRL renews the example's CRL with a nextUpdate 20 days away, inside
// the default 30-day expiry warning, so the pages have an expiring item to
// show (init's own CRL lasts 90 days and does not warn).
func expiringCRL(t *testing.T, dir string) {
	t.Helper()
	mustCLI(t, "pki", "crl", "--ca", filepath.Join(dir, "pki"),
		"--crl-out", filepath.Join(dir, "certs/trust/clients/ca.crl"), "--next-update", "20d")
}
