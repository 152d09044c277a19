package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/internal/testutil"

	"github.com/certplane/certplane/controlplane"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/xds"
)

type lockedBuffer = testutil.SyncBuffer

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// verdicts performs one request per client and reports "ok" or "refused".
func verdicts(t *testing.T, s *pkitest.Standard, addr string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, leaf := range map[string]*pkitest.Leaf{"alice": s.Alice, "mallory": s.Mallory, "stranger": s.Untrusted, "none": nil} {
		pool := x509.NewCertPool()
		pool.AddCert(s.CA.Cert)
		tc := &tls.Config{RootCAs: pool, ServerName: "localhost"}
		if leaf != nil {
			c := leaf.TLS()
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
		}
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
		resp, err := cl.Get("https://" + addr + "/")
		if err != nil {
			out[name] = "refused"
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out[name] = "ok:" + string(body)
	}
	return out
}

func waitServing(t *testing.T, s *pkitest.Standard, addr string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for verdicts(t, s, addr)["alice"] != "ok:backend" {
		select {
		case <-deadline:
			t.Fatalf("proxy never served alice on %s: %v", addr, verdicts(t, s, addr))
		case <-tick.C:
		}
	}
}

// TestProxyStandaloneAndRemoteAgree runs `certplane proxy` standalone
// (embedded control plane) and with --xds against a separate control plane
// on the same directories: both must give identical handshake verdicts.
func TestProxyStandaloneAndRemoteAgree(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "backend") }))
	defer backend.Close()
	listen := freeAddr(t)
	s := pkitest.NewStandard(t, listen, strings.TrimPrefix(backend.URL, "http://"))

	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- runProxy(ctx, []string{"--certs", s.Certs, "--config", s.Config, "--admin-address", "127.0.0.1:0", "--drain-timeout", "2s"}, &out, &errOut)
	}()
	defer func() {
		if t.Failed() {
			t.Logf("stderr:\n%s\nstdout:\n%s", errOut.String(), out.String())
		}
	}()
	waitServing(t, s, listen)
	standalone := verdicts(t, s, listen)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("standalone proxy: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), `"transport_failure":"revoked"`) {
		t.Errorf("connection log has no revoked handshake:\n%s", out.String())
	}

	// Remote: a separate control plane on loopback TCP, and --xds.
	cp, err := controlplane.New(controlplane.Options{CertsDir: s.Certs, ConfigDir: s.Config})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	lis, creds, err := xds.Listen("127.0.0.1:0", xds.Security{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = cp.Run(ctx2) }()
	go func() { _ = cp.Serve(ctx2, lis, creds) }()
	done2 := make(chan error, 1)
	go func() {
		done2 <- runProxy(ctx2, []string{"--xds", lis.Addr().String(), "--insecure-xds", "--admin-address", "", "--drain-timeout", "2s"}, io.Discard, io.Discard)
	}()
	waitServing(t, s, listen)
	remote := verdicts(t, s, listen)
	cancel2()
	if err := <-done2; err != nil {
		t.Fatalf("remote proxy: %v", err)
	}
	want := map[string]string{"alice": "ok:backend", "mallory": "refused", "stranger": "refused", "none": "refused"}
	for k, v := range want {
		if standalone[k] != v || remote[k] != v {
			t.Errorf("%s: standalone %q, remote %q; want %q", k, standalone[k], remote[k], v)
		}
	}
}
