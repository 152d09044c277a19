package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/pki/pkitest"
)

// TestDefaultAddress pins serve's default xDS endpoint: a unix socket where
// a service manager puts a sidecar's runtime files, the same one the
// bootstrap of `certplane render --ads-bootstrap` dials.
func TestDefaultAddress(t *testing.T) {
	want := "unix:///run/certplane/xds.sock"
	for name, got := range map[string]string{"DefaultAddress": DefaultAddress, "envoy.DefaultXDSAddress": envoy.DefaultXDSAddress} {
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if DefaultSocketMode != 0o600 {
		t.Errorf("DefaultSocketMode = %04o, want 0600", DefaultSocketMode)
	}
}

func TestListenRefusesPlaintextTCP(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		_, _, err := Listen(addr, Security{})
		want := `xds address "` + addr + `" is plaintext TCP: any local user could connect and read every private key served (a loopback port has no owner; a unix socket has one); use the default unix socket (unix:///run/certplane/xds.sock), xDS mTLS (--xds-cert, --xds-key, --xds-client-ca), or --insecure-xds to accept the risk`
		if err == nil || err.Error() != want {
			t.Errorf("Listen(%q) = %v\nwant %s", addr, err, want)
		}
		if got := PlaintextExposure(addr, Security{Insecure: true}); got != "any local user (a loopback port has no owner)" {
			t.Errorf("PlaintextExposure(%q) = %q", addr, got)
		}
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "example.com:18000", "10.1.2.3:18000"} {
		_, _, err := Listen(addr, Security{})
		want := `xds address "` + addr + `" is plaintext TCP off loopback: anyone who can reach the port could read every private key served; use xDS mTLS (--xds-cert, --xds-key, --xds-client-ca), or --insecure-xds to accept the risk`
		if err == nil || err.Error() != want {
			t.Errorf("Listen(%q) = %v\nwant %s", addr, err, want)
		}
		if got := PlaintextExposure(addr, Security{Insecure: true}); got != "anyone who can reach "+addr {
			t.Errorf("PlaintextExposure(%q) = %q", addr, got)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		lis, _, err := Listen(addr, Security{Insecure: true})
		if err != nil {
			t.Fatalf("--insecure-xds on %s refused: %v", addr, err)
		}
		lis.Close()
	}
	for _, tc := range []struct {
		addr string
		sec  Security
		want string
	}{
		{"127.0.0.1:0", Security{CertFile: "x"}, "xds mTLS needs all of --xds-cert, --xds-key and --xds-client-ca"},
		{"127.0.0.1:0", Security{Insecure: true, ClientCRLFiles: []string{"x.crl"}}, "xds client CRLs need xDS mTLS (--xds-cert, --xds-key and --xds-client-ca)"},
		{"127.0.0.1:0", Security{Insecure: true, SocketMode: 0o660}, `xds address "127.0.0.1:0": a socket mode and group apply to a unix socket only`},
		{"tcp://127.0.0.1:1", Security{Insecure: true}, `xds address "tcp://127.0.0.1:1": address tcp://127.0.0.1:1: too many colons in address (want unix:///path or host:port)`},
	} {
		if _, _, err := Listen(tc.addr, tc.sec); err == nil || err.Error() != tc.want {
			t.Errorf("Listen(%q, %+v) = %v\nwant %s", tc.addr, tc.sec, err, tc.want)
		}
	}
	if got := PlaintextExposure("unix:///run/x.sock", Security{}); got != "" {
		t.Errorf("PlaintextExposure(unix) = %q", got)
	}
}

func TestUnixSocketMode0600(t *testing.T) {
	dir := t.TempDir()
	// A umask of 0 would make a plain bind 0777; the mode must not depend
	// on it. Umask is process-wide: this test must not run in parallel.
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	path := filepath.Join(dir, "xds.sock")
	lis, _, err := Listen("unix://"+path, Security{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("leftovers beside the socket: %v", entries)
	}
	if got := lis.Addr().String(); got != path {
		t.Errorf("Addr() = %q, want the socket's path %q", got, path)
	}

	// While it is served, a second Listen must refuse to steal it.
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, _, err := Listen("unix://"+path, Security{}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket not removed on close: %v", err)
	}
}

// TestUnixSocketDirectory: a missing directory is created private; one that
// other users could write to (and so replace the socket in) is refused; a
// directory that cannot be created says which flag to use.
func TestUnixSocketDirectory(t *testing.T) {
	base := t.TempDir()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)

	dir := filepath.Join(base, "run-certplane")
	lis, _, err := Listen("unix://"+filepath.Join(dir, "xds.sock"), Security{})
	if err != nil {
		t.Fatal(err)
	}
	lis.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("created socket directory: %v, %v; want mode 0700", fi, err)
	}

	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o777, 0o1777, 0o775} {
		if err := os.Chmod(shared, mode); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(shared, "xds.sock")
		want := fmt.Sprintf("xds socket %s: its directory %s is writable by other users (mode %04o), who could replace the socket; use a directory only its owner may write to, such as the default /run/certplane", sock, shared, mode.Perm())
		if _, _, err := Listen("unix://"+sock, Security{}); err == nil || err.Error() != want {
			t.Errorf("Listen in a %v directory: %v\nwant %s", mode, err, want)
		}
	}

	// Only the socket's own directory is created, never a whole path.
	missing := filepath.Join(base, "missing", "run")
	sock := filepath.Join(missing, "xds.sock")
	_, _, err = Listen("unix://"+sock, Security{})
	want := "xds socket " + sock + ": cannot create its directory: mkdir " + missing + ": no such file or directory; create " + missing +
		" (systemd: RuntimeDirectory=run), run serve as a user allowed to, or choose another socket with --xds-address unix:///path"
	if err == nil || err.Error() != want {
		t.Errorf("Listen where no directory can be made: %v\nwant %s", err, want)
	}

	if os.Geteuid() != 0 {
		return
	}
	theirs := filepath.Join(base, "theirs")
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(theirs, "xds.sock")
	if _, _, err := Listen("unix://"+sock, Security{}); err == nil || err.Error() != "xds socket "+sock+": its directory "+theirs+" belongs to uid 65534, neither root nor this process's user, who could replace the socket" {
		t.Errorf("Listen in another user's directory: %v", err)
	}
}

// TestUnixSocketGroup: the operator's knob for an Envoy running as another
// user: the socket's group may connect, the directory lets it through, and
// nobody else may.
func TestUnixSocketGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: gives the socket another group")
	}
	dir := filepath.Join(t.TempDir(), "run")
	sock := filepath.Join(dir, "xds.sock")
	lis, _, err := Listen("unix://"+sock, Security{SocketMode: 0o660, SocketGroup: "65534"})
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	for path, want := range map[string]os.FileMode{sock: 0o660, dir: 0o710} {
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode().Perm() != want || fi.Sys().(*syscall.Stat_t).Gid != 65534 {
			t.Errorf("%s: %v, %v; want mode %04o, group 65534", path, fi, err, want)
		}
	}
	for _, tc := range []struct {
		sec  Security
		want string
	}{
		{Security{SocketMode: 0o666}, "xds socket mode 0666: other users must not connect (the stream carries every private key); use 0600, or 0660 with a group"},
		{Security{SocketMode: 0o060}, "xds socket mode 0060: the owner needs read and write"},
		{Security{SocketGroup: "no-such-group-certplane"}, `xds socket group "no-such-group-certplane": group: unknown group no-such-group-certplane`},
	} {
		if _, _, err := Listen("unix://"+filepath.Join(dir, "other.sock"), tc.sec); err == nil || err.Error() != tc.want {
			t.Errorf("Listen(%+v) = %v\nwant %s", tc.sec, err, tc.want)
		}
	}
}

func TestUnixSocketStaleRemovedOtherFilesKept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "xds.sock")
	// A stale socket: bound, then its process gone (closed without unlink).
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	lis, _, err := Listen("unix://"+path, Security{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	lis.Close()

	regular := filepath.Join(dir, "precious")
	if err := os.WriteFile(regular, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := "xds socket " + regular + ": exists and is not a socket; refusing to replace it"
	if _, _, err := Listen("unix://"+regular, Security{}); err == nil || err.Error() != want {
		t.Errorf("Listen on a regular file: %v, want %s", err, want)
	}
	if _, _, err := Listen("unix://relative.sock", Security{}); err == nil {
		t.Error("relative unix path accepted")
	}

	// A symbolic link is never followed nor replaced, whatever it points at.
	for _, target := range []string{regular, filepath.Join(dir, "nowhere")} {
		link := filepath.Join(dir, "link.sock")
		os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		want := "xds socket " + link + ": is a symbolic link; refusing to follow or replace it"
		if _, _, err := Listen("unix://"+link, Security{}); err == nil || err.Error() != want {
			t.Errorf("Listen on a symlink to %s: %v, want %s", target, err, want)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode().Type() != os.ModeSymlink {
			t.Errorf("the symlink was touched: %v %v", fi, err)
		}
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "x" {
		t.Errorf("the file a symlink points at was touched: %q %v", b, err)
	}
}

// TestXDSMutualTLS checks that with xDS mTLS only a client holding a
// certificate from the client CA gets anything at all.
func TestXDSMutualTLS(t *testing.T) {
	tr := pkitest.NewTree(t)
	serverCA := pkitest.NewCA(t, "xds server CA")
	clientCA := pkitest.NewCA(t, "xds client CA")
	srvCert, srvKey := tr.Server("xds", serverCA.Server("127.0.0.1"))
	caFile := tr.Trust("xds-clients", "ca.pem", clientCA.CertPEM())

	c := cache.NewSnapshotCache(true, nodeHash{}, nil)
	snap, err := build(envoy.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetSnapshot(context.Background(), allNodes, snap.snap); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{}, 10)
	cb := server.CallbackFuncs{StreamOpenFunc: func(context.Context, int64, string) error { opened <- struct{}{}; return nil }}
	lis, creds, err := Listen("0.0.0.0:0", Security{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	g := NewGRPCServer(server.NewServer(context.Background(), c, cb), creds)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	addr := "127.0.0.1:" + strings.Split(lis.Addr().String(), ":")[len(strings.Split(lis.Addr().String(), ":"))-1]

	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)
	fetch := func(certs []tls.Certificate) error {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs: roots, Certificates: certs, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
		})))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(&discoverygrpc.DiscoveryRequest{Node: &core.Node{Id: "n"}, TypeUrl: resource.ClusterType}); err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}

	if err := fetch(nil); status.Code(err) != codes.Unavailable {
		t.Errorf("client without a certificate: %v, want Unavailable (handshake refused)", err)
	}
	stranger := pkitest.NewCA(t, "stranger CA").Client("stranger").TLS()
	if err := fetch([]tls.Certificate{stranger}); status.Code(err) != codes.Unavailable {
		t.Errorf("client with an untrusted certificate: %v, want Unavailable", err)
	}
	select {
	case <-opened:
		t.Fatal("an xDS stream was opened for a client without a trusted certificate")
	default:
	}
	if err := fetch([]tls.Certificate{clientCA.Client("envoy").TLS()}); err != nil {
		t.Fatalf("trusted client: %v", err)
	}

	// Plaintext to the mTLS port gets nothing either.
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err == nil {
		_ = s.Send(&discoverygrpc.DiscoveryRequest{Node: &core.Node{Id: "n"}, TypeUrl: resource.ClusterType})
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext client: %v, want Unavailable", err)
	}
}
