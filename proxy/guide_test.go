package proxy

import (
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certplane/certplane/pki/pkitest"
)

// guideEnv is the cloud guides' setup: a server certificate, a client CA
// with alice (valid) and mallory (revoked), two backends behind one
// verify-mode listener with XFCC and ALB headers.
type guideEnv struct {
	ads                 *adsServer
	px                  *runningProxy
	serverCA, clientCA  *pkitest.CA
	server              *pkitest.Leaf
	alice, bob, mallory *pkitest.Leaf
	expired, other      *pkitest.Leaf
	b1, b2              *backend
	listener            listenerSpec
	backendSpec         backendSpec
	addr                string
}

func newGuideEnv(t testing.TB, mutate func(*listenerSpec)) *guideEnv {
	t.Helper()
	e := &guideEnv{}
	e.serverCA = pkitest.NewCA(t, "Server Root CA")
	e.server = e.serverCA.Server("proxy.test")
	e.clientCA = pkitest.NewCA(t, "Client Root CA")
	e.alice = e.clientCA.Client("alice", pkitest.URIs("spiffe://example.org/alice"), pkitest.DNS("alice.example.org"))
	e.bob = e.clientCA.Client("bob")
	e.mallory = e.clientCA.Client("mallory")
	e.expired = e.clientCA.Client("old", pkitest.Expired())
	e.other = pkitest.NewCA(t, "Other CA").Client("eve")
	e.clientCA.Revoke(e.mallory)
	e.b1, e.b2 = startBackend(t, "backend 1"), startBackend(t, "backend 2")
	e.listener = listenerSpec{
		name: "public", certs: []string{"server/proxy"}, mode: "verify", trust: "trust/clients",
		xfcc: true, alb: true, routes: [][2]string{{"/", "app"}},
	}
	if mutate != nil {
		mutate(&e.listener)
	}
	e.backendSpec = backendSpec{name: "app", endpoints: []string{e.b1.addr(), e.b2.addr()}, hcPath: "/healthz"}
	e.ads = startADS(t, "127.0.0.1:0")
	e.publish(t, e.clientCA.CRLPEM())
	e.px = startProxy(t, e.ads.addr)
	e.addr = e.px.addr(t, "public")
	waitFor(t, "both backends healthy", func() bool { return e.healthy("app") == 2 })
	return e
}

func (e *guideEnv) resources(crl []byte) *resourceSet {
	rs := &resourceSet{}
	rs.add(e.listener.build()...)
	rs.add(e.backendSpec.build()...)
	rs.add(keyPairSecret("server/proxy", e.server), trustSecret("trust/clients", e.clientCA.CertPEM(), crl))
	return rs
}

func (e *guideEnv) publish(t testing.TB, crl []byte) { e.ads.set(e.resources(crl)) }

func (e *guideEnv) healthy(cluster string) int {
	n := 0
	for _, c := range e.px.Status().Clusters {
		if c.Name == cluster {
			for _, h := range c.Hosts {
				if h.Healthy && !h.Ejected {
					n++
				}
			}
		}
	}
	return n
}

func (e *guideEnv) url(path string) string { return "https://" + e.addr + path }

// writeFiles writes PEM files for curl and openssl.
func writeFiles(t *testing.T, files map[string][]byte) string {
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func need(t *testing.T, tool string) {
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s is not installed; this test drives the real %s binary", tool, tool)
	}
}

// TestCloudGuide replays the cloud load balancers' mTLS guide with curl.
func TestCloudGuide(t *testing.T) {
	need(t, "curl")
	e := newGuideEnv(t, nil)
	dir := writeFiles(t, map[string][]byte{
		"server-ca.crt": e.serverCA.CertPEM(),
		"alice.crt":     e.alice.CertPEM(), "alice.key": e.alice.KeyPEM(),
		"mallory.crt": e.mallory.CertPEM(), "mallory.key": e.mallory.KeyPEM(),
		"old.crt": e.expired.CertPEM(), "old.key": e.expired.KeyPEM(),
		"eve.crt": e.other.CertPEM(), "eve.key": e.other.KeyPEM(),
	})
	_, port, _ := strings.Cut(e.addr, ":")
	curl := func(who string) (string, error) {
		args := []string{"-sS", "--max-time", "10", "--cacert", filepath.Join(dir, "server-ca.crt"),
			"--resolve", "proxy.test:" + port + ":127.0.0.1"}
		if who != "" {
			args = append(args, "--cert", filepath.Join(dir, who+".crt"), "--key", filepath.Join(dir, who+".key"))
		}
		out, err := exec.Command("curl", append(args, "https://proxy.test:"+port+"/")...).CombinedOutput()
		return string(out), err
	}
	var got []string
	for range 4 {
		out, err := curl("alice")
		if err != nil {
			t.Fatalf("curl with alice: %v: %s", err, out)
		}
		got = append(got, out)
	}
	first := got[0]
	want := []string{"backend 1", "backend 2"}
	if first == "backend 2" {
		want = []string{"backend 2", "backend 1"}
	}
	for i, g := range got {
		if g != want[i%2] {
			t.Fatalf("answers %q do not alternate between the two backends", got)
		}
	}
	for _, c := range []struct{ who, reason, subject string }{
		{"", "no_certificate", ""},
		{"eve", "unknown_ca", "CN=eve"},
		{"old", "expired", "CN=old"},
		{"mallory", "revoked", "CN=mallory"},
	} {
		out, err := curl(c.who)
		if err == nil {
			t.Errorf("curl as %q succeeded (%q); want a refused handshake", c.who, out)
			continue
		}
		want := map[string]string{"msg": "handshake", "result": "fail", keyTransportFailure: c.reason}
		if c.subject != "" {
			want["peer_subject"] = c.subject
		}
		waitFor(t, "log line "+c.reason, func() bool { return len(e.px.log.find(want)) > 0 })
	}
	if n := len(e.px.log.find(map[string]string{"msg": "request", "upstream_host": e.b1.addr(), "status": "200"})); n != 2 {
		t.Errorf("request log lines for backend 1 = %d, want 2", n)
	}
}

// TestAdvertisedCANames checks the CertificateRequest's CA list with
// openssl s_client, and that suppress_client_ca_list empties it.
func TestAdvertisedCANames(t *testing.T) {
	need(t, "openssl")
	for _, suppress := range []bool{false, true} {
		e := newGuideEnv(t, func(l *listenerSpec) { l.suppress = suppress })
		cmd := exec.Command("openssl", "s_client", "-connect", e.addr, "-servername", "proxy.test", "-tls1_2")
		cmd.Stdin = strings.NewReader("")
		out, _ := cmd.CombinedOutput()
		s := string(out)
		const hdr = "Acceptable client certificate CA names"
		switch {
		case !suppress && !strings.Contains(s, hdr+"\nCN=Client Root CA\n") && !strings.Contains(s, hdr+"\nCN = Client Root CA\n"):
			t.Errorf("advertised names missing; s_client said:\n%s", s)
		case suppress && !strings.Contains(s, "No client certificate CA names sent"):
			t.Errorf("suppress_client_ca_list: names still sent; s_client said:\n%s", s)
		}
	}
}

var _ = tls.VersionTLS13
