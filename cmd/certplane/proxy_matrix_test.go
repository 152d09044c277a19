package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/controlplane"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/proxy"
	"github.com/certplane/certplane/proxy/mtls"
	"github.com/certplane/certplane/proxy/proxytest"
	"github.com/certplane/certplane/xds"
	"github.com/certplane/certplane/xds/client"
)

// TestProxyMatrixEmbeddedAndRemoteAgree writes the attack matrix (27
// cases, proxytest) as one certplane config and certs directory, then feeds
// it to the proxy twice: through the embedded control plane of `certplane
// proxy --certs --config` (startEmbedded, private unix socket), and through
// a separate control plane on loopback TCP as `certplane proxy --xds`
// consumes it. Every case must get the same handshake verdict and logged
// reason from both, and that verdict must be the matrix's.
func TestProxyMatrixEmbeddedAndRemoteAgree(t *testing.T) {
	m := proxytest.NewMatrix(t)
	var mu sync.Mutex
	var lastXFCC string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastXFCC = r.Header.Get("X-Forwarded-Client-Cert")
		mu.Unlock()
		_, _ = io.WriteString(w, "backend")
	}))
	defer backend.Close()
	xfcc := func() string { mu.Lock(); defer mu.Unlock(); return lastXFCC }

	tr := pkitest.NewTree(t)
	addrs := reserveAddrs(t, len(m.Cases))
	byName := map[string]string{}
	for i, c := range m.Cases {
		byName[c.Name] = addrs[i]
	}
	m.WriteTree(tr, func(name string) string { return byName[name] }, strings.TrimPrefix(backend.URL, "http://"))

	want := map[string]string{}
	for _, c := range m.Cases {
		want[c.Name] = expectedVerdict(c)
	}

	embedded := runMatrixProxy(t, m, byName, xfcc, func(ctx context.Context, reg *prometheus.Registry) (string, func()) {
		ctx, cancel := context.WithCancel(ctx)
		g := &components{cancel: cancel, log: discard()}
		_, target, cleanup, err := startEmbedded(ctx, proxyFlags{certs: tr.Certs, config: tr.Config}, reg, discard(), g)
		if err != nil {
			t.Fatalf("startEmbedded: %v", err)
		}
		return target, func() {
			if err := g.stop(); err != nil {
				t.Errorf("embedded control plane: %v", err)
			}
			cleanup()
		}
	})
	remote := runMatrixProxy(t, m, byName, xfcc, func(ctx context.Context, _ *prometheus.Registry) (string, func()) {
		cp, err := controlplane.New(controlplane.Options{CertsDir: tr.Certs, ConfigDir: tr.Config, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		lis, creds, err := xds.Listen("127.0.0.1:0", xds.Security{Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		results := make(chan error, 2)
		go func() { results <- cp.Run(ctx) }()
		go func() { results <- cp.Serve(ctx, lis, creds) }()
		return lis.Addr().String(), func() {
			for range 2 {
				if err := <-results; err != nil {
					t.Errorf("remote control plane: %v", err)
				}
			}
		}
	})
	for _, c := range m.Cases {
		if embedded[c.Name] != remote[c.Name] {
			t.Errorf("%s: embedded %q, --xds %q: the two paths disagree", c.Name, embedded[c.Name], remote[c.Name])
		}
		if embedded[c.Name] != want[c.Name] {
			t.Errorf("%s: embedded %q, want %q", c.Name, embedded[c.Name], want[c.Name])
		}
		if remote[c.Name] != want[c.Name] {
			t.Errorf("%s: --xds %q, want %q", c.Name, remote[c.Name], want[c.Name])
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// expectedVerdict renders a case's verdict as runMatrixProxy reports it.
func expectedVerdict(c proxytest.Case) string {
	switch {
	case c.Reason != "":
		return "reject " + c.Reason
	case c.Client != nil && c.Mode != "off":
		return "accept 200 xfcc=" + certSHA256(c.Client.Cert)
	}
	return "accept 200 xfcc="
}

func certSHA256(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// reserveAddrs returns n distinct free loopback addresses, all held open
// until every one is chosen so the kernel cannot hand one out twice.
func reserveAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out
}

// runMatrixProxy starts a control plane with start (which returns the xDS
// target and a function that waits for the control plane to stop once ctx
// ends), runs a proxy on it with the matrix's clock, and returns each
// case's verdict: "accept <status> xfcc=<hash the backend saw>" or
// "reject <transport_failure logged>".
func runMatrixProxy(t *testing.T, m *proxytest.Matrix, addrs map[string]string, xfcc func() string,
	start func(ctx context.Context, reg *prometheus.Registry) (string, func())) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reg := admin.NewRegistry()
	target, waitCP := start(ctx, reg)
	var connLog lockedBuffer
	p := proxy.New(proxy.Options{
		Logger: discard(), ConnLog: slog.New(slog.NewJSONHandler(&connLog, nil)), Registry: reg,
		DrainTimeout: 2 * time.Second, FailureLogWindow: -1, MTLS: mtls.Options{Now: m.Clock},
	})
	done := make(chan error, 1)
	go func() {
		done <- p.Run(ctx, client.Config{Target: target, NodeID: "matrix", NodeCluster: "test", Insecure: true,
			Backoff: func(int) time.Duration { return 20 * time.Millisecond }})
	}()
	t0 := time.Now()
	defer func() {
		t.Logf("serve+verdicts %v", time.Since(t0))
		t1 := time.Now()
		cancel()
		defer func() { t.Logf("stop %v", time.Since(t1)) }()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
		waitCP()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !matrixServing(p, m) {
		if time.Now().After(deadline) {
			t.Fatalf("proxy never served every matrix listener on %s: %+v", target, p.Status())
		}
		tick := time.NewTimer(10 * time.Millisecond)
		<-tick.C
	}
	t.Logf("serving after %v", time.Since(t0))
	out := map[string]string{}
	for _, c := range m.Cases {
		if got := p.ListenerAddr(c.Name).String(); got != addrs[c.Name] {
			t.Fatalf("%s: proxy listens on %s, config says %s", c.Name, got, addrs[c.Name])
		}
		out[c.Name] = matrixVerdict(t, m, c, addrs[c.Name], &connLog, xfcc)
	}
	return out
}

// matrixServing reports whether every listener serves and backend "app"
// has its endpoint.
func matrixServing(p *proxy.Proxy, m *proxytest.Matrix) bool {
	for _, c := range m.Cases {
		if p.ListenerAddr(c.Name) == nil {
			return false
		}
	}
	for _, c := range p.Status().Clusters {
		if c.Name == "app" && len(c.Hosts) == 1 && c.Hosts[0].Healthy {
			return true
		}
	}
	return false
}

// matrixVerdict sends one request as the case's client, with a spoofed
// XFCC, and reports the verdict.
func matrixVerdict(t *testing.T, m *proxytest.Matrix, c proxytest.Case, addr string, connLog *lockedBuffer, xfcc func() string) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(m.ServerCA.Cert)
	tc := &tls.Config{RootCAs: pool, ServerName: proxytest.ServerName}
	if c.Client != nil {
		kp := c.Client.TLS()
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true, ForceAttemptHTTP2: true}}
	req, _ := http.NewRequest("GET", "https://"+addr+"/", nil)
	req.Header.Set("X-Forwarded-Client-Cert", `By=spoofed;Hash=0;Subject="CN=root"`)
	resp, err := cl.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got := xfcc()
		hash := ""
		if h, ok := strings.CutPrefix(got, "Hash="); ok {
			hash, _, _ = strings.Cut(h, ";")
		} else if got != "" {
			hash = "unparsed:" + got
		}
		return fmt.Sprintf("accept %d xfcc=%s", resp.StatusCode, hash)
	}
	// The refusal's log line is written when the server's handshake ends,
	// which may be just after the client saw the alert.
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range strings.Split(connLog.String(), "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(line), &l) != nil {
				continue
			}
			if l["msg"] == "handshake" && l["listener"] == c.Name && l["result"] == "fail" {
				return fmt.Sprintf("reject %v", l["transport_failure"])
			}
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("reject without a log line (%v)", err)
		}
		tick := time.NewTimer(5 * time.Millisecond)
		<-tick.C
	}
}
