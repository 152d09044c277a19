package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	"google.golang.org/grpc/status"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
)

// mtlsEnv is an xDS server with mTLS on loopback, its PKI as files, and its
// log.
type mtlsEnv struct {
	t                  *testing.T
	dir                string
	serverCA, clientCA *pkitest.CA
	sec                Security
	addr               string
	log                *syncBuffer
}

func newMTLSEnv(t *testing.T) *mtlsEnv {
	t.Helper()
	e := &mtlsEnv{t: t, dir: t.TempDir(), serverCA: pkitest.NewCA(t, "xds server CA"), clientCA: pkitest.NewCA(t, "xds client CA"), log: &syncBuffer{}}
	srv := e.serverCA.Server("127.0.0.1", pkitest.IPs("127.0.0.1"))
	e.sec = Security{
		CertFile:     e.write("server.crt", srv.CertPEM()),
		KeyFile:      e.write("server.key", srv.KeyPEM()),
		ClientCAFile: e.write("ca.pem", e.clientCA.CertPEM()),
		Logger:       slog.New(slog.NewJSONHandler(e.log, nil)),
	}
	return e
}

func (e *mtlsEnv) write(name string, data []byte) string {
	e.t.Helper()
	path := filepath.Join(e.dir, name)
	if err := pki.WriteFileAtomic(path, data, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// start serves an empty snapshot with e.sec on a free loopback port.
func (e *mtlsEnv) start() {
	e.t.Helper()
	lis, creds, err := Listen("127.0.0.1:0", e.sec)
	if err != nil {
		e.t.Fatal(err)
	}
	c := cache.NewSnapshotCache(true, nodeHash{}, nil)
	snap, err := build(envoy.Set{})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.SetSnapshot(context.Background(), allNodes, snap.snap); err != nil {
		e.t.Fatal(err)
	}
	g := NewGRPCServer(server.NewServer(context.Background(), c, nil), creds)
	go g.Serve(lis)
	e.t.Cleanup(g.Stop)
	e.addr = lis.Addr().String()
}

func (e *mtlsEnv) creds(l *pkitest.Leaf) credentials.TransportCredentials {
	roots := x509.NewCertPool()
	roots.AddCert(e.serverCA.Cert)
	return credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{l.TLS()}})
}

// stream opens an ADS stream as l and waits for the first response.
func (e *mtlsEnv) stream(ctx context.Context, l *pkitest.Leaf) (discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient, error) {
	conn, err := grpc.NewClient("passthrough:///"+e.addr, grpc.WithTransportCredentials(e.creds(l)))
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	s, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.Send(&discoverygrpc.DiscoveryRequest{Node: &core.Node{Id: "n"}, TypeUrl: resource.ClusterType}); err != nil {
		return nil, err
	}
	_, err = s.Recv()
	return s, err
}

// fetch reports whether l gets an answer.
func (e *mtlsEnv) fetch(l *pkitest.Leaf) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := e.stream(ctx, l)
	return err
}

func (e *mtlsEnv) wantRefused(what string, l *pkitest.Leaf) {
	e.t.Helper()
	if err := e.fetch(l); status.Code(err) != codes.Unavailable {
		e.t.Errorf("%s: %v, want Unavailable (handshake refused)", what, err)
	}
}

func (e *mtlsEnv) wantServed(what string, l *pkitest.Leaf) {
	e.t.Helper()
	if err := e.fetch(l); err != nil {
		e.t.Errorf("%s: %v, want served", what, err)
	}
}

// fastRecheck makes the servers this test starts look at their files every
// 20 ms, so that closing a revoked client's stream takes no second.
func fastRecheck(t *testing.T) {
	old := recheckEvery
	recheckEvery = 20 * time.Millisecond
	t.Cleanup(func() { recheckEvery = old })
}

// ended receives on s until the stream ends, and then yields its error.
func ended(s discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient) <-chan error {
	closed := make(chan error, 1)
	go func() {
		for {
			if _, err := s.Recv(); err != nil {
				closed <- err
				return
			}
		}
	}()
	return closed
}

// TestClientCRLForms: revocation applies whichever way the CRL is given: a
// --xds-client-crl file in PEM or DER, whatever its name, or X509 CRL
// blocks in the CA file itself.
func TestClientCRLForms(t *testing.T) {
	for _, form := range []string{"pem .crl", "der .crl", "pem .pem", "in the CA file"} {
		t.Run(form, func(t *testing.T) {
			e := newMTLSEnv(t)
			good, revoked := e.clientCA.Client("good"), e.clientCA.Client("revoked")
			e.clientCA.Revoke(revoked)
			switch form {
			case "pem .crl":
				e.sec.ClientCRLFiles = []string{e.write("ca.crl", e.clientCA.CRLPEM())}
			case "der .crl":
				e.sec.ClientCRLFiles = []string{e.write("ca.crl", e.clientCA.CRL())}
			case "pem .pem":
				e.sec.ClientCRLFiles = []string{e.write("crl.pem", e.clientCA.CRLPEM())}
			default:
				e.write("ca.pem", append(e.clientCA.CertPEM(), e.clientCA.CRLPEM()...))
			}
			e.start()
			e.wantRefused("revoked client", revoked)
			e.wantServed("valid client", good)
			if l := e.log.String(); !strings.Contains(l, `"msg":"xds client refused","component":"xds-auth","reason":"revoked"`) || !strings.Contains(l, "CN=revoked") {
				t.Errorf("log does not say why the revoked client was refused:\n%s", l)
			}
		})
	}
}

// TestClientCRLReload: a CRL file that changes applies to the next
// handshake and closes open streams of clients it now revokes; a CRL that
// expires or disappears refuses every client; a fresh one lets them back.
func TestClientCRLReload(t *testing.T) {
	fastRecheck(t)

	e := newMTLSEnv(t)
	good, other := e.clientCA.Client("good"), e.clientCA.Client("other")
	crl := e.write("ca.crl", e.clientCA.CRLPEM())
	e.sec.ClientCRLFiles = []string{crl}
	e.start()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := e.stream(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	closed := ended(s)
	e.write("ca.crl", e.clientCA.CRLPEM(pkitest.CRLRevoked(good)))
	e.wantRefused("client revoked by the new CRL", good)
	select {
	case err := <-closed:
		if status.Code(err) != codes.Unavailable {
			t.Errorf("open stream of the revoked client ended with %v, want Unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the open stream of a revoked client is still open")
	}
	e.wantServed("client the new CRL does not list", other)

	e.write("ca.crl", e.clientCA.CRLPEM(pkitest.CRLExpired()))
	e.wantRefused("client under an expired CRL", other)
	if l := e.log.String(); !strings.Contains(l, `"msg":"xds client CA or CRL unusable; refusing every xDS client"`) || !strings.Contains(l, crl+": CRL 1 (issuer CN=xds client CA) expired on") {
		t.Errorf("log does not name the expired CRL:\n%s", l)
	}
	if err := os.Remove(crl); err != nil {
		t.Fatal(err)
	}
	e.wantRefused("client while the CRL file is missing", other)
	e.write("ca.crl", e.clientCA.CRLPEM(pkitest.CRLRevoked(good)))
	e.wantServed("client after a fresh CRL", other)
	e.wantRefused("revoked client after a fresh CRL", good)
}

// TestClientCRLExpiresWhileLoaded: a CRL that was current when loaded and
// expires later refuses new handshakes and closes open streams, with no
// file change at all.
func TestClientCRLExpiresWhileLoaded(t *testing.T) {
	fastRecheck(t)

	e := newMTLSEnv(t)
	good := e.clientCA.Client("good")
	now := time.Now().UTC().Truncate(time.Second)
	next := now.Add(3 * time.Second)
	e.sec.ClientCRLFiles = []string{e.write("ca.crl", e.clientCA.CRLPEM(pkitest.CRLTimes(now.Add(-time.Hour), next)))}
	e.start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := e.stream(ctx, good)
	if err != nil {
		t.Fatalf("client before the CRL expires: %v", err)
	}
	closed := ended(s)
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("the open stream outlived the CRL's nextUpdate")
	}
	if time.Now().Before(next) {
		t.Errorf("stream closed before the CRL expired")
	}
	e.wantRefused("client after the CRL expired", good)
	if l := e.log.String(); !strings.Contains(l, `"reason":"crl_expired"`) {
		t.Errorf("log does not say the CRL expired:\n%s", l)
	}
}

// TestClientTrustAdmission: Listen refuses, naming the file, what would make
// revocation fail open or refuse every client by surprise.
func TestClientTrustAdmission(t *testing.T) {
	e := newMTLSEnv(t)
	stranger := pkitest.NewCA(t, "stranger CA")
	second := pkitest.NewCA(t, "second client CA")
	for _, tc := range []struct {
		name  string
		setup func() Security
		want  string
	}{
		{"expired CRL", func() Security {
			s := e.sec
			s.ClientCRLFiles = []string{e.write("expired.crl", e.clientCA.CRLPEM(pkitest.CRLExpired()))}
			return s
		}, filepath.Join(e.dir, "expired.crl") + ": CRL 1 (issuer CN=xds client CA) expired on"},
		{"CRL of another CA", func() Security {
			s := e.sec
			s.ClientCRLFiles = []string{e.write("stranger.crl", stranger.CRLPEM())}
			return s
		}, filepath.Join(e.dir, "stranger.crl") + ": CRL 1 (issuer CN=stranger CA) is not signed by any CA of trust store \"xds-client-ca\""},
		{"a CA without a CRL", func() Security {
			s := e.sec
			s.ClientCAFile = e.write("two.pem", append(e.clientCA.CertPEM(), second.CertPEM()...))
			s.ClientCRLFiles = []string{e.write("one.crl", e.clientCA.CRLPEM())}
			return s
		}, `CA "CN=second client CA" has no CRL among`},
		{"missing CRL file", func() Security {
			s := e.sec
			s.ClientCRLFiles = []string{filepath.Join(e.dir, "nope.crl")}
			return s
		}, "xds client CRL: open " + filepath.Join(e.dir, "nope.crl") + ": no such file or directory"},
		{"certificate in a CRL file", func() Security {
			s := e.sec
			s.ClientCRLFiles = []string{e.write("cert.crl", e.clientCA.CertPEM())}
			return s
		}, filepath.Join(e.dir, "cert.crl") + `: unexpected "CERTIFICATE" PEM block at line 1; a .crl file holds only X509 CRL blocks`},
	} {
		_, _, err := Listen("127.0.0.1:0", tc.setup())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Listen = %v\nwant it to contain %s", tc.name, err, tc.want)
		}
	}
}

func TestNodeIdentities(t *testing.T) {
	ca := pkitest.NewCA(t, "ids")
	for _, tc := range []struct {
		leaf    *pkitest.Leaf
		ids     []string
		bound   []string
		unbound []string
	}{
		{ca.Client("edge-1"), []string{"edge-1"}, []string{"edge-1"}, []string{"", "Edge-1", "edge-2"}},
		{ca.Client("cn", pkitest.URIs("spiffe://example.org/edge/3")), []string{"spiffe://example.org/edge/3"},
			[]string{"spiffe://example.org/edge/3"}, []string{"cn", "spiffe://example.org/edge", "SPIFFE://example.org/edge/3"}},
		{ca.Client("cn", pkitest.DNS("edge-4.example.org")), []string{"edge-4.example.org"},
			[]string{"edge-4.example.org", "EDGE-4.example.org"}, []string{"cn", "edge-4"}},
	} {
		if got := NodeIdentities(tc.leaf.Cert); strings.Join(got, " ") != strings.Join(tc.ids, " ") {
			t.Errorf("NodeIdentities(%s) = %q, want %q", tc.leaf.Cert.Subject, got, tc.ids)
		}
		for _, id := range tc.bound {
			if !nodeBound(id, tc.leaf.Cert) {
				t.Errorf("node %q refused for %s", id, tc.leaf.Cert.Subject)
			}
		}
		for _, id := range tc.unbound {
			if nodeBound(id, tc.leaf.Cert) {
				t.Errorf("node %q admitted for %s", id, tc.leaf.Cert.Subject)
			}
		}
	}

	tk := newTracker("", discardLogger(), nil)
	tk.bind = true
	cert := ca.Client("edge-1").Cert
	if err := tk.admit(nodeOf("edge-1"), cert); err != nil {
		t.Errorf("bound node: %v", err)
	}
	for _, tc := range []struct {
		node string
		cert *x509.Certificate
		want string
	}{
		{"edge-2", cert, `rpc error: code = PermissionDenied desc = node "edge-2" refused: node ids are bound to client certificates (--xds-bind-node-id) and this one may be ["edge-1"] only`},
		{"edge-1", nil, `rpc error: code = PermissionDenied desc = node "edge-1" refused: node ids are bound to client certificates (--xds-bind-node-id) and this connection has none`},
	} {
		if err := tk.admit(nodeOf(tc.node), tc.cert); err == nil || err.Error() != tc.want {
			t.Errorf("admit(%q) = %v\nwant %s", tc.node, err, tc.want)
		}
	}
}

func TestSharedClientCAWarnings(t *testing.T) {
	dir := t.TempDir()
	xdsCA := pkitest.NewCA(t, "xds CA")
	other := pkitest.NewCA(t, "clients CA")
	under := xdsCA.Intermediate("clients under the xds CA")
	caFile := filepath.Join(dir, "xds-ca.pem")
	if err := os.WriteFile(caFile, xdsCA.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	store := func(name string, cas ...*pkitest.CA) *config.TrustStore {
		ts := &config.TrustStore{Name: name, Files: []string{"/certs/trust/" + name + "/ca.pem"}}
		for _, c := range cas {
			ts.CAs = append(ts.CAs, c.Cert)
		}
		return ts
	}
	m := &config.Model{Trust: map[string]*config.TrustStore{
		"apart":  store("apart", other),
		"shared": store("shared", other, xdsCA),
		"under":  store("under", under),
	}}
	var got []string
	for _, p := range SharedClientCAWarnings(m, caFile) {
		if p.File != caFile {
			t.Errorf("warning names %q, want %q", p.File, caFile)
		}
		got = append(got, p.Error())
	}
	tail := ": a client certificate that a listener admits could open an xDS stream and read every private key served; give xDS clients a CA of their own"
	want := []string{
		caFile + `: xDS client CA "CN=xds CA" is also a CA of trust store "shared" (/certs/trust/shared/ca.pem)` + tail,
		caFile + `: xDS client CA "CN=xds CA" issued CA "CN=clients under the xds CA" of trust store "under" (/certs/trust/under/ca.pem)` + tail,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if w := SharedClientCAWarnings(m, ""); w != nil {
		t.Errorf("no xDS CA file: %v", w)
	}
}
