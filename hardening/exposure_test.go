package hardening_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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

	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
)

// The xDS stream carries every private key served. These tests add, on top
// of xds/listen_test.go and cmd/certplane/serve_test.go (which test
// xds.Listen and runServe in-process), the same guarantees through the real
// binary as an operator starts it.

// defaultSocket is the documented default xDS endpoint of `certplane serve`.
const defaultSocket = "/run/certplane/xds.sock"

// nobody is the uid and gid of an unprivileged local user.
const nobody = 65534

// startCmd starts a command and returns a channel of its stderr lines. The
// process is killed and reaped when the test ends.
func startCmd(t *testing.T, env []string, name string, args ...string) (<-chan string, *exec.Cmd) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
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

// startBin starts the certplane binary.
func startBin(t *testing.T, env []string, args ...string) (<-chan string, *exec.Cmd) {
	t.Helper()
	return startCmd(t, env, certplaneBin(t), args...)
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
			t.Fatalf("no log line with %q within %s; seen:\n%s", s, deadline, strings.Join(seen, "\n"))
		}
	}
}

// waitLines waits until every one of want has appeared in some line, in
// any order.
func waitLines(t *testing.T, lines <-chan string, want ...string) {
	t.Helper()
	left := slices.Clone(want)
	timeout := time.After(deadline)
	var seen []string
	for len(left) > 0 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("process exited before logging %q; it logged:\n%s", left, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			left = slices.DeleteFunc(left, func(w string) bool { return strings.Contains(l, w) })
		case <-timeout:
			t.Fatalf("no log lines with %q within %s; seen:\n%s", left, deadline, strings.Join(seen, "\n"))
		}
	}
}

// runBinFor runs the certplane binary for at most limit. A process still
// running then is killed and reported as running.
func runBinFor(t *testing.T, limit time.Duration, args ...string) (out string, code int, running bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, certplaneBin(t), args...)
	b, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(b), -1, true
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(b), ee.ExitCode(), false
	}
	if err != nil {
		t.Fatalf("certplane %v: %v", args, err)
	}
	return string(b), 0, false
}

// target is how grpc names an xDS address: unix:///path as it is, and
// host:port without any resolver in the way.
func target(addr string) string {
	if strings.HasPrefix(addr, "unix:") {
		return addr
	}
	return "passthrough:///" + addr
}

// openADS opens an ADS stream as node and asks for every Secret.
func openADS(ctx context.Context, addr string, creds credentials.TransportCredentials, node string) (discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient, func(), error) {
	conn, err := grpc.NewClient(target(addr), grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, nil, err
	}
	s, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err == nil {
		err = s.Send(&discoverygrpc.DiscoveryRequest{Node: &core.Node{Id: node}, TypeUrl: resource.SecretType})
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return s, func() { conn.Close() }, nil
}

// fetchSecrets returns how many Secrets node gets from addr.
func fetchSecrets(addr string, creds credentials.TransportCredentials, node string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, done, err := openADS(ctx, addr, creds, node)
	if err != nil {
		return 0, err
	}
	defer done()
	r, err := s.Recv()
	if err != nil {
		return 0, err
	}
	return len(r.GetResources()), nil
}

// probeEnv names the xDS addresses TestXDSProbeHelper tries, space-separated.
const probeEnv = "CERTPLANE_XDS_PROBE"

// TestXDSProbeHelper is not a test of its own: the xDS tests run this test
// binary again as another user, so that it tries what any local process
// could, and read its verdict on stdout.
func TestXDSProbeHelper(t *testing.T) {
	addrs := os.Getenv(probeEnv)
	if addrs == "" {
		t.Skip("runs only as the probe process of the xDS exposure tests")
	}
	for _, addr := range strings.Fields(addrs) {
		n, err := fetchSecrets(addr, insecure.NewCredentials(), "probe")
		fmt.Printf("probe %s secrets=%d err=%v\n", addr, n, err)
	}
}

var (
	probeOnce sync.Once
	probePath string
	probeErr  error
)

// probeBinary is this test binary, copied where an unprivileged user may
// run it (go test keeps it in a private directory): beside the certplane
// binary, whose directory TestMain removes at the end.
func probeBinary(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(certplaneBin(t))
	probeOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			probeErr = err
			return
		}
		data, err := os.ReadFile(self)
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err == nil {
			probePath = filepath.Join(dir, "probe")
			err = os.WriteFile(probePath, data, 0o755)
		}
		probeErr = err
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return probePath
}

// probeAs runs the probe as uid:gid (and, when nsPID is not 0, inside the
// mount and network namespaces of process nsPID) against addrs, and returns
// each address's verdict: "secrets=N err=...".
func probeAs(t *testing.T, uid, gid uint32, nsPID int, addrs ...string) map[string]string {
	t.Helper()
	bin := probeBinary(t)
	var cmd *exec.Cmd
	if nsPID != 0 {
		cmd = exec.Command("nsenter", "--target", strconv.Itoa(nsPID), "--mount", "--net",
			"--setuid", strconv.Itoa(int(uid)), "--setgid", strconv.Itoa(int(gid)),
			"--", bin, "-test.run=^TestXDSProbeHelper$")
	} else {
		cmd = exec.Command(bin, "-test.run=^TestXDSProbeHelper$")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	}
	cmd.Env = append(os.Environ(), probeEnv+"="+strings.Join(addrs, " "))
	out, err := cmd.CombinedOutput()
	got := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(l, "probe "); ok {
			addr, verdict, _ := strings.Cut(rest, " ")
			got[addr] = verdict
		}
	}
	if len(got) != len(addrs) {
		t.Fatalf("probe as %d:%d: %v\n%s", uid, gid, err, out)
	}
	return got
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs processes as another user")
	}
}

// privateNS is the shell prelude that gives a process its own /run and its
// own loopback, so a test can use the real default socket path (and today's
// old default port) without touching the host's.
const privateNS = `mount -t tmpfs -o mode=0755 certplane-run /run && ip link set lo up`

func requireNamespaces(t *testing.T) {
	t.Helper()
	requireRoot(t)
	out, err := exec.Command("unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", privateNS).CombinedOutput()
	if err != nil {
		t.Skipf("private mount and network namespaces unavailable: %v %s", err, out)
	}
}

// TestXDSDefaultIsAPrivateSocket starts `certplane serve` with no
// --xds-address, as an operator would, in a private /run: its xDS endpoint
// is a mode-0600 unix socket in a 0700 directory, and a process of user
// nobody gets no Secret from it, nor from the old default TCP port.
func TestXDSDefaultIsAPrivateSocket(t *testing.T) {
	requireNamespaces(t)
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	lines, cmd := startCmd(t, nil, "unshare", "--mount", "--net", "--propagation", "private",
		"sh", "-c", privateNS+` && exec "$0" "$@"`, certplaneBin(t),
		"serve", "--certs", std.Certs, "--config", std.Config, "--admin-address", "")
	waitLine(t, lines, `"msg":"xds listening"`)
	pid := cmd.Process.Pid

	// Seen from here through the process's root: its private /run.
	sock := fmt.Sprintf("/proc/%d/root%s", pid, defaultSocket)
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("default xDS endpoint %s: %v, %v; want a socket, mode 0600", defaultSocket, fi, err)
	}
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory of the default socket: %v, %v; want mode 0700", fi, err)
	}

	got := probeAs(t, nobody, nobody, pid, "unix://"+defaultSocket, "127.0.0.1:18000")
	for addr, verdict := range got {
		t.Logf("user nobody at %s: %s", addr, verdict)
		if !strings.HasPrefix(verdict, "secrets=0 ") || strings.HasSuffix(verdict, "err=<nil>") {
			t.Errorf("user nobody at %s: %s; want no Secret and an error", addr, verdict)
		}
	}
	// The socket's owner is served: access control, not a dead socket.
	if got := probeAs(t, 0, 0, pid, "unix://"+defaultSocket); got["unix://"+defaultSocket] != "secrets=2 err=<nil>" {
		t.Errorf("root on the default socket: %v; want 2 Secrets", got)
	}
}

func TestXDSPlaintextTCPNeedsExplicitFlag(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	serve := func(limit time.Duration, extra ...string) (string, int, bool) {
		return runBinFor(t, limit, append([]string{"serve", "--certs", std.Certs, "--config", std.Config, "--admin-address", ""}, extra...)...)
	}

	for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("localhost:%d", freePort(t))} {
		out, code, running := serve(deadline, "--xds-address", addr)
		want := fmt.Sprintf(`certplane serve: xds address %q is plaintext TCP: any local user could connect and read every private key served`, addr)
		if running || code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "--insecure-xds") {
			t.Errorf("serve --xds-address %s: running=%v exit %d, output:\n%s\nwant exit 1 and %s", addr, running, code, out, want)
		}
	}
	for _, addr := range []string{"0.0.0.0:18000", "[::]:18000", ":18000", "192.0.2.10:18000"} {
		out, code, running := serve(deadline, "--xds-address", addr)
		want := fmt.Sprintf(`certplane serve: xds address %q is plaintext TCP off loopback: anyone who can reach the port could read every private key served; use xDS mTLS (--xds-cert, --xds-key, --xds-client-ca), or --insecure-xds to accept the risk`, addr)
		if running || code != 1 || !strings.Contains(out, want) {
			t.Errorf("serve --xds-address %s: running=%v exit %d, output:\n%s\nwant exit 1 and %s", addr, running, code, out, want)
		}
	}
	// The proxy's client side refuses plaintext TCP too, even on loopback:
	// a local user who binds the port first would feed it its own keys,
	// listeners and backends.
	for _, tc := range []struct{ target, where string }{
		{"192.0.2.10:18000", "non-loopback"},
		{fmt.Sprintf("127.0.0.1:%d", freePort(t)), "loopback"},
	} {
		out, code := runCLI(t, "proxy", "--xds", tc.target, "--admin-address", "")
		if code == 0 || !strings.Contains(out, fmt.Sprintf(`plaintext TCP to %s target %q refused`, tc.where, tc.target)) {
			t.Errorf("proxy --xds %s plaintext: exit %d, output:\n%s", tc.target, code, out)
		}
	}

	// --insecure-xds is the explicit way to accept the risk, and serve says
	// at start what it exposes, to whom.
	for _, tc := range []struct{ host, who string }{
		{"127.0.0.1", "any local user"},
		{"0.0.0.0", "anyone who can reach"},
	} {
		addr := fmt.Sprintf("%s:%d", tc.host, freePort(t))
		lines, _ := startBin(t, nil, "serve", "--certs", std.Certs, "--config", std.Config,
			"--xds-address", addr, "--insecure-xds", "--admin-address", "")
		warn := waitLine(t, lines, `"msg":"xds: plaintext TCP without authentication"`)
		if !strings.Contains(warn, `"level":"WARN"`) || !strings.Contains(warn, "every private key served") || !strings.Contains(warn, tc.who) {
			t.Errorf("--insecure-xds on %s: start warning %s; want WARN naming every private key and %q", addr, warn, tc.who)
		}
		waitLine(t, lines, `"msg":"xds listening"`)
	}
}

func TestXDSUnixSocketAccess(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")

	t.Run("unix sockets are 0600 whatever the umask", func(t *testing.T) {
		dir := t.TempDir()
		old := syscall.Umask(0) // inherited by the child; process-wide, so not parallel
		defer syscall.Umask(old)
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
		// Its own example on free ports: std's (8443, 9001) may be a demo's
		// on this machine. The listener started, or refused for a port taken
		// meanwhile: either way the embedded control plane has served.
		own := pkitest.NewStandard(t, fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t)))
		lines, _ = startBin(t, []string{"TMPDIR=" + tmp}, "proxy", "--certs", own.Certs, "--config", own.Config, "--admin-address", "")
		waitLine(t, lines, `"msg":"listener `)
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

	t.Run("another user cannot connect; a shared group can when asked", func(t *testing.T) {
		requireRoot(t)
		// A directory anyone may traverse: only the socket's own mode
		// stands between user nobody and the keys.
		dir, err := os.MkdirTemp("", "cpx")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		private := "unix://" + filepath.Join(dir, "private.sock")
		lines, _ := startBin(t, nil, "serve", "--certs", std.Certs, "--config", std.Config, "--xds-address", private, "--admin-address", "")
		waitLine(t, lines, `"msg":"xds listening"`)
		if got := probeAs(t, nobody, nobody, 0, private)[private]; !strings.HasPrefix(got, "secrets=0 ") || strings.HasSuffix(got, "err=<nil>") {
			t.Errorf("user nobody on a 0600 socket: %s; want refused", got)
		}

		// --xds-socket-mode 0660 with a group: that group's members (Envoy's
		// user) are served, and nobody else.
		shared := "unix://" + filepath.Join(dir, "shared.sock")
		lines, _ = startBin(t, nil, "serve", "--certs", std.Certs, "--config", std.Config, "--xds-address", shared,
			"--xds-socket-mode", "0660", "--xds-socket-group", strconv.Itoa(nobody), "--admin-address", "")
		waitLine(t, lines, `"msg":"xds listening"`)
		fi, err := os.Lstat(strings.TrimPrefix(shared, "unix://"))
		if err != nil || fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Gid != nobody {
			t.Errorf("shared socket: %v, %v; want mode 0660, group %d", fi, err, nobody)
		}
		if got := probeAs(t, nobody, nobody, 0, shared)[shared]; got != "secrets=2 err=<nil>" {
			t.Errorf("a member of the socket's group: %s; want served", got)
		}
		if got := probeAs(t, nobody-1, nobody-1, 0, shared)[shared]; !strings.HasPrefix(got, "secrets=0 ") || strings.HasSuffix(got, "err=<nil>") {
			t.Errorf("a user outside the socket's group: %s; want refused", got)
		}

		// A socket readable by every user is refused outright.
		out, code := runCLI(t, "serve", "--certs", std.Certs, "--config", std.Config, "--xds-address", shared, "--xds-socket-mode", "0666", "--admin-address", "")
		if code != 2 || !strings.Contains(out, "--xds-socket-mode 0666") {
			t.Errorf("--xds-socket-mode 0666: exit %d, output:\n%s", code, out)
		}
	})
}

// xdsPKI is the xDS channel's own PKI for mTLS tests: a server CA and a
// client CA, with serve's certificate and the client CA as files.
type xdsPKI struct {
	dir                string
	serverCA, clientCA *pkitest.CA
	cert, key, ca      string
}

func newXDSPKI(t *testing.T) *xdsPKI {
	t.Helper()
	x := &xdsPKI{dir: t.TempDir(), serverCA: pkitest.NewCA(t, "xds server CA"), clientCA: pkitest.NewCA(t, "xds client CA")}
	srv := x.serverCA.Server("127.0.0.1", pkitest.IPs("127.0.0.1"))
	x.cert = x.write("server.crt", srv.CertPEM())
	x.key = x.write("server.key", srv.KeyPEM())
	x.ca = x.write("clients-ca.pem", x.clientCA.CertPEM())
	return x
}

func (x *xdsPKI) write(name string, data []byte) string {
	path := filepath.Join(x.dir, name)
	if err := pki.WriteFileAtomic(path, data, 0o600); err != nil {
		panic(err)
	}
	return path
}

// serve starts `certplane serve` with xDS mTLS on a free loopback port and
// returns its address and stderr lines.
func (x *xdsPKI) serve(t *testing.T, std *pkitest.Standard, extra ...string) (string, <-chan string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := append([]string{"serve", "--certs", std.Certs, "--config", std.Config, "--admin-address", "",
		"--xds-address", addr, "--xds-cert", x.cert, "--xds-key", x.key, "--xds-client-ca", x.ca}, extra...)
	lines, _ := startBin(t, nil, args...)
	waitLine(t, lines, `"msg":"xds listening"`)
	return addr, lines
}

// creds are the TLS credentials of an xDS client presenting l (none: nil).
func (x *xdsPKI) creds(l *pkitest.Leaf) credentials.TransportCredentials {
	roots := x509.NewCertPool()
	roots.AddCert(x.serverCA.Cert)
	c := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if l != nil {
		c.Certificates = []tls.Certificate{l.TLS()}
	}
	return credentials.NewTLS(c)
}

func TestXDSMutualTLSAdmitsOnlyTrustedClients(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	x := newXDSPKI(t)
	addr, _ := x.serve(t, std)
	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{"plaintext", insecure.NewCredentials()},
		{"TLS without a client certificate", x.creds(nil)},
		{"certificate from an untrusted CA", x.creds(pkitest.NewCA(t, "stranger").Client("envoy"))},
		{"certificate from the xDS server's CA", x.creds(x.serverCA.Client("envoy"))},
		{"expired certificate from the client CA", x.creds(x.clientCA.Client("envoy", pkitest.Expired()))},
	} {
		n, err := fetchSecrets(addr, tc.creds, "probe")
		if status.Code(err) != codes.Unavailable || n != 0 {
			t.Errorf("%s: %d secrets, err %v; want nothing (Unavailable)", tc.name, n, err)
		}
	}
	if n, err := fetchSecrets(addr, x.creds(x.clientCA.Client("envoy")), "probe"); err != nil || n != 2 {
		t.Errorf("trusted client: %d secrets, err %v; want 2 (server/default, trust/clients)", n, err)
	}
}

// TestXDSRevokedClientInCABundle: a CRL block beside the CA in
// --xds-client-ca (as Envoy's trusted_ca takes them) revokes too.
func TestXDSRevokedClientInCABundle(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	x := newXDSPKI(t)
	revoked := x.clientCA.Client("stolen")
	x.clientCA.Revoke(revoked)
	x.ca = x.write("clients-ca.pem", append(x.clientCA.CertPEM(), x.clientCA.CRLPEM()...))
	addr, _ := x.serve(t, std)
	if n, err := fetchSecrets(addr, x.creds(revoked), "edge"); n != 0 || status.Code(err) != codes.Unavailable {
		t.Errorf("revoked xDS client: %d secrets, err %v; want refused", n, err)
	}
	if n, err := fetchSecrets(addr, x.creds(x.clientCA.Client("edge-1")), "edge"); n != 2 || err != nil {
		t.Errorf("valid xDS client: %d secrets, err %v; want 2", n, err)
	}
}

// TestXDSClientRevocation checks xDS client certificates against the CRL of
// --xds-client-crl on every handshake, reloads it when its file changes,
// closes the open stream of a client it now revokes, and fails closed while
// the CRL is expired or missing.
func TestXDSClientRevocation(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	x := newXDSPKI(t)
	good := x.clientCA.Client("edge-1")
	other := x.clientCA.Client("edge-2")
	revoked := x.clientCA.Client("stolen")
	crl := x.write("clients.crl", x.clientCA.CRLPEM(pkitest.CRLRevoked(revoked)))
	addr, lines := x.serve(t, std, "--xds-client-crl", crl)

	refused := func(l *pkitest.Leaf) bool {
		n, err := fetchSecrets(addr, x.creds(l), "edge")
		return n == 0 && status.Code(err) == codes.Unavailable
	}
	served := func(l *pkitest.Leaf) bool {
		n, err := fetchSecrets(addr, x.creds(l), "edge")
		return n == 2 && err == nil
	}
	if !refused(revoked) {
		t.Error("a revoked xDS client certificate was not refused")
	}
	if l := waitLine(t, lines, `"msg":"xds client refused"`); !strings.Contains(l, `"reason":"revoked"`) || !strings.Contains(l, "stolen") {
		t.Errorf("refusal log line %s; want reason revoked and the subject", l)
	}
	if !served(good) {
		t.Fatal("a valid xDS client certificate was not served")
	}

	// A client holding a stream when its certificate is revoked: the new
	// CRL applies to its next handshake, and its stream is closed.
	ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
	defer cancel()
	s, done, err := openADS(ctx, addr, x.creds(good), "edge")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		for {
			if _, err := s.Recv(); err != nil {
				closed <- err
				return
			}
		}
	}()
	revokedAt := time.Now()
	x.write("clients.crl", x.clientCA.CRLPEM(pkitest.CRLRevoked(revoked, good)))
	waitFor(t, "the newly revoked client refused", func() bool { return refused(good) })
	t.Logf("new CRL to the revoked client's next handshake refused: %s", time.Since(revokedAt).Round(time.Millisecond))
	select {
	case err := <-closed:
		if status.Code(err) == codes.OK {
			t.Errorf("open stream of the revoked client ended with %v", err)
		}
		t.Logf("new CRL to the revoked client's open stream closed: %s", time.Since(revokedAt).Round(time.Millisecond))
	case <-time.After(deadline):
		t.Error("the open stream of a revoked xDS client was not closed")
	}
	waitLine(t, lines, `"msg":"xds connection closed: client certificate no longer accepted"`)
	if !served(other) {
		t.Error("a client the new CRL does not list was refused")
	}

	// An expired CRL fails closed, for every client.
	x.write("clients.crl", x.clientCA.CRLPEM(pkitest.CRLRevoked(revoked), pkitest.CRLExpired()))
	waitFor(t, "every client refused under an expired CRL", func() bool { return refused(other) })
	if l := waitLine(t, lines, `"msg":"xds client CA or CRL unusable; refusing every xDS client"`); !strings.Contains(l, crl) || !strings.Contains(l, "expired") {
		t.Errorf("expired CRL log line %s; want the file and 'expired'", l)
	}
	// So does a CRL that cannot be read.
	if err := os.Remove(crl); err != nil {
		t.Fatal(err)
	}
	if !refused(other) {
		t.Error("a client was served while its CRL file is missing")
	}
	// A fresh CRL reopens the door to the clients it does not list.
	x.write("clients.crl", x.clientCA.CRLPEM(pkitest.CRLRevoked(revoked, good)))
	waitFor(t, "clients served again after a fresh CRL", func() bool { return served(other) })
	if !refused(good) || !refused(revoked) {
		t.Error("a revoked client was served after the CRL came back")
	}
}

// TestXDSBindNodeID refuses a stream whose node id is not an identity of the
// client's certificate.
func TestXDSBindNodeID(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	x := newXDSPKI(t)
	byCN := x.clientCA.Client("edge-1")
	bySPIFFE := x.clientCA.Client("cn-is-ignored", pkitest.URIs("spiffe://example.org/edge/3"))
	addr, lines := x.serve(t, std, "--xds-bind-node-id")

	for _, tc := range []struct {
		cert *pkitest.Leaf
		node string
		ok   bool
	}{
		{byCN, "edge-1", true},
		{byCN, "edge-2", false},
		{bySPIFFE, "spiffe://example.org/edge/3", true},
		{bySPIFFE, "cn-is-ignored", false},
		{bySPIFFE, "edge-3", false},
	} {
		n, err := fetchSecrets(addr, x.creds(tc.cert), tc.node)
		switch {
		case tc.ok && (err != nil || n != 2):
			t.Errorf("%s as node %q: %d secrets, %v; want served", tc.cert.Cert.Subject.CommonName, tc.node, n, err)
		case !tc.ok && (status.Code(err) != codes.PermissionDenied || n != 0):
			t.Errorf("%s as node %q: %d secrets, %v; want PermissionDenied", tc.cert.Cert.Subject.CommonName, tc.node, n, err)
		}
	}
	if l := waitLine(t, lines, `"msg":"xds node refused"`); !strings.Contains(l, `"node":"edge-2"`) || !strings.Contains(l, "edge-1") {
		t.Errorf("refusal log line %s; want the node id and the certificate's identity", l)
	}

	// Binding needs a certificate to bind to.
	out, code := runCLI(t, "serve", "--certs", std.Certs, "--config", std.Config, "--xds-bind-node-id",
		"--xds-address", "unix://"+filepath.Join(t.TempDir(), "x.sock"), "--admin-address", "")
	if code != 2 || !strings.Contains(out, "--xds-bind-node-id needs xDS mTLS") {
		t.Errorf("--xds-bind-node-id without mTLS: exit %d, output:\n%s", code, out)
	}
}

// TestXDSSharedClientCAWarning warns when a certificate that a listener
// admits could also open an xDS stream.
func TestXDSSharedClientCAWarning(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	x := newXDSPKI(t)
	x.ca = std.TrustCA // the data plane's client CA, reused for xDS
	adminPort := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	lines, _ := startBin(t, nil, "serve", "--certs", std.Certs, "--config", std.Config,
		"--admin-address", fmt.Sprintf("127.0.0.1:%d", adminPort),
		"--xds-address", addr, "--xds-cert", x.cert, "--xds-key", x.key, "--xds-client-ca", x.ca)
	l := waitLine(t, lines, `is also a CA of trust store \"clients\"`)
	if !strings.Contains(l, `"level":"WARN"`) || !strings.Contains(l, std.TrustCA) {
		t.Errorf("shared CA warning %s; want WARN naming %s", l, std.TrustCA)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `is also a CA of trust store \"clients\"`) {
		t.Errorf("/status does not show the shared CA warning:\n%s", body)
	}
}

// TestProxyOverUnixXDS runs the Go data plane as a client of `certplane
// serve` over its unix socket, and a client through it.
func TestProxyOverUnixXDS(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	port := freePort(t)
	std := pkitest.NewStandard(t, fmt.Sprintf("127.0.0.1:%d", port), backend.Listener.Addr().String())
	dir, err := os.MkdirTemp("", "cpx") // short: a socket path holds 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := "unix://" + filepath.Join(dir, "xds.sock")
	lines, _ := startBin(t, nil, "serve", "--certs", std.Certs, "--config", std.Config, "--xds-address", sock, "--admin-address", "")
	waitLine(t, lines, `"msg":"xds listening"`)
	plines, _ := startBin(t, nil, "proxy", "--xds", sock, "--node-id", "edge", "--admin-address", "")
	// The backend is routable once its first health check passed; that
	// line may come before or after the listener's.
	waitLines(t, plines, "listener started", `"healthy":true`)

	pool := x509.NewCertPool()
	pool.AddCert(std.CA.Cert)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{std.Alice.TLS()},
	}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("through the proxy: %d %q", resp.StatusCode, body)
	}
}
