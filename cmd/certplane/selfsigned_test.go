package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/pki/pkitest"
)

// TestTutorialServerCertificateServed: a server certificate made the way
// most tutorials do (`openssl req -x509 -newkey ... -subj /CN=localhost`,
// CA:TRUE by OpenSSL 3's default) is served by the proxy, as Envoy and nginx
// serve it, and `check` says why it is unusual without failing.
func TestTutorialServerCertificateServed(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "backend") }))
	defer backend.Close()
	listen := freeAddr(t)
	s := pkitest.NewStandard(t, listen, strings.TrimPrefix(backend.URL, "http://"))
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
		"-keyout", s.ServerKey, "-out", s.ServerCert, "-subj", "/CN=localhost",
		"-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1").CombinedOutput(); err != nil {
		t.Fatalf("openssl req -x509: %v\n%s", err, out)
	}

	out, errb, code := cli(t, "check", "--certs", s.Certs, "--config", s.Config)
	if code != 0 || !strings.Contains(out, "is a self-signed CA certificate") || !strings.Contains(out, "1 listener served, 0 blocked") {
		t.Errorf("check exited %d (stderr %q); want 0, the listener served and the self-signed CA warning:\n%s", code, errb, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- runProxy(ctx, []string{"--certs", s.Certs, "--config", s.Config, "--admin-address", "127.0.0.1:0", "--drain-timeout", "1s"}, &stdout, &stderr)
	}()
	serverPEM, err := os.ReadFile(s.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverPEM)
	alice := s.Alice.TLS()
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{
		RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{alice},
	}}}
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		resp, err := cl.Get("https://" + listen + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(b) == "backend" {
				break
			}
			last = resp.Status + " " + string(b)
		} else {
			last = err.Error()
		}
		select {
		case <-deadline:
			t.Fatalf("the proxy never served with the tutorial certificate: %s\nstderr:\n%s", last, stderr.String())
		case <-tick.C:
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("proxy: %v", err)
	}
}
