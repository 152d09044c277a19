package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/status"
)

// serveLog collects the JSON log lines of a running `certplane serve`.
type serveLog struct {
	lines   chan map[string]any
	leaked  atomic.Bool      // a line held PEM key material
	pending []map[string]any // read, not yet asked for
}

func startServe(t *testing.T, args ...string) (*serveLog, <-chan error, context.CancelFunc) {
	t.Helper()
	pr, pw := io.Pipe()
	sl := &serveLog{lines: make(chan map[string]any, 1024)}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if bytes.Contains(sc.Bytes(), []byte("PRIVATE KEY")) {
				sl.leaked.Store(true)
			}
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				sl.lines <- m
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := runServe(ctx, args, io.Discard, pw)
		pw.Close()
		done <- err
	}()
	t.Cleanup(cancel)
	return sl, done, cancel
}

// next returns the first log line with msg not returned yet, waiting for it.
func (s *serveLog) next(t *testing.T, msg string) map[string]any {
	t.Helper()
	for i, m := range s.pending {
		if m["msg"] == msg {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			return m
		}
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.lines:
			if m["msg"] == msg {
				return m
			}
			s.pending = append(s.pending, m)
		case <-timeout:
			t.Fatalf("no %q log line within 10s", msg)
		}
	}
}

func TestServe(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	sock := filepath.Join(t.TempDir(), "xds.sock")
	sl, done, cancel := startServe(t,
		"--certs", std.Certs, "--config", std.Config,
		"--xds-address", "unix://"+sock, "--admin-address", "127.0.0.1:0",
		"--debounce", "5ms", "--resync", "1h")

	pub := sl.next(t, "reload: published")
	if pub["listeners"] != float64(1) || pub["pushed"] != true {
		t.Errorf("first reload line %v", pub)
	}
	adminAddr := sl.next(t, "admin listening")["address"].(string)
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("xds socket: %v %v", fi, err)
	}

	resp, err := http.Get("http://" + adminAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz = %d", resp.StatusCode)
	}

	// An ADS client on the socket gets the listener.
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	stream, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoverygrpc.DiscoveryRequest{Node: &core.Node{Id: "sidecar"}, TypeUrl: resource.ListenerType}); err != nil {
		t.Fatal(err)
	}
	lds, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(lds.GetResources()) != 1 {
		t.Fatalf("LDS returned %d listeners, want 1", len(lds.GetResources()))
	}

	// A broken key is logged with its file and reason, and not published.
	other := std.CA.Server("localhost")
	keyFile := std.Write("certs/server/default/tls.key", other.KeyPEM(), 0o600)
	prob := sl.next(t, "problem")
	if prob["file"] != keyFile || prob["listener"] != "https" || prob["last_good_served"] != true ||
		!strings.Contains(prob["err"].(string), "does not match the public key") {
		t.Errorf("problem line %v", prob)
	}
	if sl.leaked.Load() {
		t.Error("key material in the log")
	}
	st := fetchStatus(t, adminAddr)
	if len(st.ControlPlane.Errors) != 1 || st.ControlPlane.Errors[0].File != keyFile {
		t.Errorf("/status errors %+v", st.ControlPlane.Errors)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v on shutdown", err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

func fetchStatus(t *testing.T, addr string) status.Status {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st status.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestServeRefusesOpenXDS(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	for _, tc := range []struct{ addr, want string }{
		{"0.0.0.0:18000", `xds address "0.0.0.0:18000" is plaintext TCP off loopback: anyone who can reach the port could read every private key served; use xDS mTLS (--xds-cert, --xds-key, --xds-client-ca), or --insecure-xds to accept the risk`},
		{"127.0.0.1:0", `xds address "127.0.0.1:0" is plaintext TCP: any local user could connect and read every private key served (a loopback port has no owner; a unix socket has one); use the default unix socket (unix:///run/certplane/xds.sock), xDS mTLS (--xds-cert, --xds-key, --xds-client-ca), or --insecure-xds to accept the risk`},
	} {
		err := runServe(context.Background(), []string{
			"--certs", std.Certs, "--config", std.Config, "--xds-address", tc.addr, "--admin-address", "",
		}, io.Discard, io.Discard)
		if err == nil || err.Error() != tc.want {
			t.Errorf("--xds-address %s: got %v\nwant %s", tc.addr, err, tc.want)
		}
	}
}

// TestServeDefaultXDSAddress: with no --xds-address, serve listens on the
// private unix socket (the address itself is tested in xds; the binary test
// in hardening starts serve on it).
func TestServeDefaultXDSAddress(t *testing.T) {
	var out bytes.Buffer
	if err := runServe(context.Background(), []string{"--help"}, &out, io.Discard); !errors.Is(err, errHelp) {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `(default "unix:///run/certplane/xds.sock")`) || !strings.Contains(out.String(), `-xds-socket-mode string`) {
		t.Errorf("serve --help does not show the unix socket default:\n%s", out.String())
	}
}

func TestServeXDSFlagErrors(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	sock := "unix://" + filepath.Join(t.TempDir(), "xds.sock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--xds-socket-mode", "0666"}, "--xds-socket-mode 0666 lets every local user connect and read every private key served; use 0600, or 0660 with --xds-socket-group"},
		{[]string{"--xds-socket-mode", "rw"}, `--xds-socket-mode "rw": want octal permission bits such as 0600 or 0660`},
		{[]string{"--xds-socket-mode", "0400"}, "--xds-socket-mode 0400: the owner needs read and write (0600)"},
		{[]string{"--xds-socket-group", "envoy"}, "--xds-socket-group envoy needs a --xds-socket-mode that lets the group connect (0660)"},
		{[]string{"--xds-bind-node-id"}, "--xds-bind-node-id needs xDS mTLS (--xds-cert, --xds-key, --xds-client-ca): a node id is bound to a client certificate"},
	} {
		err := runServe(context.Background(), append([]string{"--certs", std.Certs, "--config", std.Config, "--xds-address", sock, "--admin-address", ""}, tc.args...), io.Discard, io.Discard)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || err.Error() != tc.want {
			t.Errorf("serve %v: %v\nwant exit 2: %s", tc.args, err, tc.want)
		}
	}
}

// TestServeWarnsSharedClientCA: an xDS client CA that a listener's trust
// store also trusts is a warning in the log and on /status.
func TestServeWarnsSharedClientCA(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	srv := pkitest.NewCA(t, "xds server CA").Server("127.0.0.1", pkitest.IPs("127.0.0.1"))
	crt, key := std.Tree.Client("xds-server", srv) // outside trust/: not a trust store
	sl, _, _ := startServe(t, "--certs", std.Certs, "--config", std.Config, "--admin-address", "127.0.0.1:0",
		"--xds-address", "unix://"+filepath.Join(t.TempDir(), "xds.sock"),
		"--xds-cert", crt, "--xds-key", key, "--xds-client-ca", std.TrustCA)
	w := sl.next(t, "warning")
	if w["file"] != std.TrustCA || !strings.Contains(w["warning"].(string), `is also a CA of trust store "clients"`) {
		t.Errorf("warning line %v", w)
	}
	st := fetchStatus(t, sl.next(t, "admin listening")["address"].(string))
	found := false
	for _, p := range st.ControlPlane.Warnings {
		found = found || p.File == std.TrustCA
	}
	if !found {
		t.Errorf("/status warnings %+v do not name %s", st.ControlPlane.Warnings, std.TrustCA)
	}
}

func TestServeNodeID(t *testing.T) {
	std := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	sock := filepath.Join(t.TempDir(), "xds.sock")
	sl, _, _ := startServe(t, "--certs", std.Certs, "--config", std.Config,
		"--xds-address", "unix://"+sock, "--admin-address", "", "--node-id", "edge-1")
	sl.next(t, "xds listening")
	sl.next(t, "reload: published")

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fetch := func(node string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(&discoverygrpc.DiscoveryRequest{Node: &core.Node{Id: node}, TypeUrl: resource.ClusterType}); err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}
	if err := fetch("edge-1"); err != nil {
		t.Errorf("edge-1: %v", err)
	}
	if err := fetch("edge-2"); grpcstatus.Code(err) != codes.PermissionDenied {
		t.Errorf("edge-2: %v, want PermissionDenied", err)
	}
}

func TestServeUsage(t *testing.T) {
	err := runServe(context.Background(), []string{"--certs", "x"}, io.Discard, io.Discard)
	if err == nil || err.Error() != "--certs and --config are required" {
		t.Errorf("missing --config: %v", err)
	}
}
