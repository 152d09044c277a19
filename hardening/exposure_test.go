package hardening_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/certplane/certplane/pki/pkitest"
)

// The xDS stream carries every private key served. These tests add, on top
// of xds/listen_test.go and cmd/certplane/serve_test.go (which test
// xds.Listen and runServe in-process), the same guarantees through the real
// binary as an operator starts it.

// startBin starts the certplane binary and returns a channel of its stderr
// lines and a stop function.
func startBin(t *testing.T, env []string, args ...string) (<-chan string, *exec.Cmd) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, certplaneBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	pr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return lines, cmd
}

// waitLine waits for a stderr line containing s.
func waitLine(t *testing.T, lines <-chan string, s string) string {
	t.Helper()
	timeout := time.After(deadline)
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("process exited before logging %q; it logged:\n%s", s, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if strings.Contains(l, s) {
				return l
			}
		case <-timeout:
			t.Fatalf("no log line with %q within %s", s, deadline)
		}
	}
}

func TestXDSNeverOpenByAccident(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")

	t.Run("non-loopback TCP refused without mTLS or --insecure-xds", func(t *testing.T) {
		for _, addr := range []string{"0.0.0.0:18000", "[::]:18000", ":18000", "192.0.2.10:18000"} {
			out, code := runCLI(t, "serve", "--certs", std.Certs, "--config", std.Config, "--xds-address", addr, "--admin-address", "")
			want := fmt.Sprintf(`certplane serve: xds address %q is not loopback: the xDS stream carries private keys, so serving it on the network needs --xds-cert, --xds-key and --xds-client-ca (mTLS), or --insecure-xds to accept the risk`, addr)
			if code != 1 || !strings.Contains(out, want) {
				t.Errorf("serve --xds-address %s: exit %d, output:\n%s\nwant exit 1 and %s", addr, code, out, want)
			}
		}
		// The proxy's client side refuses plaintext off the machine too.
		out, code := runCLI(t, "proxy", "--xds", "192.0.2.10:18000", "--admin-address", "")
		if code == 0 || !strings.Contains(out, `plaintext to non-loopback target "192.0.2.10:18000" refused`) {
			t.Errorf("proxy --xds 192.0.2.10:18000 plaintext: exit %d, output:\n%s", code, out)
		}
		// --insecure-xds is the explicit way to accept the risk.
		port := freePort(t)
		lines, _ := startBin(t, nil, "serve", "--certs", std.Certs, "--config", std.Config,
			"--xds-address", fmt.Sprintf("0.0.0.0:%d", port), "--insecure-xds", "--admin-address", "")
		waitLine(t, lines, `"msg":"xds listening"`)
	})

	t.Run("unix sockets are 0600 whatever the umask", func(t *testing.T) {
		old := syscall.Umask(0) // inherited by the child; process-wide, so not parallel
		defer syscall.Umask(old)
		dir := t.TempDir()
		sock := filepath.Join(dir, "xds.sock")
		lines, _ := startBin(t, nil, "serve", "--certs", std.Certs, "--config", std.Config,
			"--xds-address", "unix://"+sock, "--admin-address", "")
		waitLine(t, lines, `"msg":"xds listening"`)
		if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Errorf("serve socket: %v, %v; want a socket, mode 0600", fi, err)
		}

		// A path the kernel cannot bind is refused with a clear message.
		long := filepath.Join(dir, strings.Repeat("d", 100-len(dir)), "xds.sock")
		if err := os.MkdirAll(filepath.Dir(long), 0o700); err != nil {
			t.Fatal(err)
		}
		out, code := runCLI(t, "serve", "--certs", std.Certs, "--config", std.Config, "--xds-address", "unix://"+long, "--admin-address", "")
		if code != 1 || !strings.Contains(out, "xds socket "+long+": path too long: a unix socket path holds at most 107 bytes") {
			t.Errorf("serve on a %d-byte socket path: exit %d, output:\n%s", len(long), code, out)
		}

		// Standalone proxy: the embedded control plane's private socket.
		// A short TMPDIR: t.TempDir() plus the socket's name would be too
		// long for a unix socket path.
		tmp, err := os.MkdirTemp("", "cp")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		lines, _ = startBin(t, []string{"TMPDIR=" + tmp}, "proxy", "--certs", std.Certs, "--config", std.Config, "--admin-address", "")
		waitLine(t, lines, "listener started")
		socks, _ := filepath.Glob(filepath.Join(tmp, "certplane-xds-*", "xds.sock"))
		if len(socks) != 1 {
			t.Fatalf("embedded xDS sockets under TMPDIR: %v, want one", socks)
		}
		if fi, err := os.Lstat(socks[0]); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("embedded socket: %v, %v; want mode 0600", fi, err)
		}
		if fi, err := os.Stat(filepath.Dir(socks[0])); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("embedded socket directory: %v, %v; want mode 0700", fi, err)
		}
	})

	t.Run("with xDS mTLS a client without a trusted certificate gets nothing", func(t *testing.T) {
		serverCA := pkitest.NewCA(t, "xds server CA")
		clientCA := pkitest.NewCA(t, "xds client CA")
		tr := pkitest.NewTree(t)
		crt, key := tr.Server("xds", serverCA.Server("127.0.0.1"))
		ca := tr.Trust("xds-clients", "ca.pem", clientCA.CertPEM())
		port := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		lines, _ := startBin(t, nil, "serve", "--certs", std.Certs, "--config", std.Config,
			"--xds-address", addr, "--xds-cert", crt, "--xds-key", key, "--xds-client-ca", ca, "--admin-address", "")
		waitLine(t, lines, `"mtls":true`)

		roots := x509.NewCertPool()
		roots.AddCert(serverCA.Cert)
		fetch := func(certs []tls.Certificate, creds credentials.TransportCredentials) (int, error) {
			if creds == nil {
				creds = credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: certs, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
			}
			conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				return 0, err
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
			if err != nil {
				return 0, err
			}
			if err := s.Send(&discoverygrpc.DiscoveryRequest{Node: &core.Node{Id: "probe"}, TypeUrl: resource.SecretType}); err != nil {
				return 0, err
			}
			r, err := s.Recv()
			if err != nil {
				return 0, err
			}
			return len(r.GetResources()), nil
		}
		for _, tc := range []struct {
			name  string
			certs []tls.Certificate
			creds credentials.TransportCredentials
		}{
			{"plaintext", nil, insecure.NewCredentials()},
			{"TLS without a client certificate", nil, nil},
			{"certificate from an untrusted CA", []tls.Certificate{pkitest.NewCA(t, "stranger").Client("envoy").TLS()}, nil},
			{"certificate from the xDS server's CA", []tls.Certificate{serverCA.Client("envoy").TLS()}, nil},
			{"expired certificate from the client CA", []tls.Certificate{clientCA.Client("envoy", pkitest.Expired()).TLS()}, nil},
		} {
			n, err := fetch(tc.certs, tc.creds)
			if status.Code(err) != codes.Unavailable || n != 0 {
				t.Errorf("%s: %d secrets, err %v; want nothing (Unavailable)", tc.name, n, err)
			}
		}
		if n, err := fetch([]tls.Certificate{clientCA.Client("envoy").TLS()}, nil); err != nil || n != 2 {
			t.Errorf("trusted client: %d secrets, err %v; want 2 (server/default, trust/clients)", n, err)
		}
	})
}
