package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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

func TestListenRefusesNonLoopbackWithoutProtection(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "example.com:18000", "10.1.2.3:18000"} {
		_, _, err := Listen(addr, Security{})
		want := `xds address "` + addr + `" is not loopback: the xDS stream carries private keys, so serving it on the network needs --xds-cert, --xds-key and --xds-client-ca (mTLS), or --insecure-xds to accept the risk`
		if err == nil || err.Error() != want {
			t.Errorf("Listen(%q) = %v\nwant %s", addr, err, want)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		lis, _, err := Listen(addr, Security{})
		if err != nil {
			t.Errorf("Listen(%q): %v", addr, err)
			continue
		}
		lis.Close()
	}
	lis, _, err := Listen("0.0.0.0:0", Security{Insecure: true})
	if err != nil {
		t.Fatalf("--insecure-xds refused: %v", err)
	}
	lis.Close()
	if _, _, err := Listen("0.0.0.0:0", Security{CertFile: "x"}); err == nil || err.Error() != "xds mTLS needs all of --xds-cert, --xds-key and --xds-client-ca" {
		t.Errorf("partial mTLS flags: %v", err)
	}
}

func TestUnixSocketMode0600(t *testing.T) {
	// A umask of 0 would make a plain bind 0777; the mode must not depend
	// on it. Umask is process-wide: this test must not run in parallel.
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	dir := t.TempDir()
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
