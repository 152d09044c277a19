package crlmem

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/internal/heapprobe"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/xds"
)

// BenchmarkPushOtherCA: serve's side of one push. A trust store holds CA A
// with a 1M-serial CRL and CA B with a small one, served by an xds.Server
// to one ADS client subscribed to the listener's Secrets; each iteration
// writes a new CRL of B, reloads, publishes and waits for the client to
// receive the new Secrets. The heap peak is serve's and the client's
// together (the client holds one decoded response: 46 MB at most).
//
//	go test -run '^$' -bench PushOtherCA -benchtime 5x -memprofile push.pprof ./bench/crlmem
func BenchmarkPushOtherCA(b *testing.B) {
	der, caA := bigCRL(b, serials)
	caB, err := pki.NewRootCA(pki.Options{CommonName: "Bench Other CA"})
	if err != nil {
		b.Fatal(err)
	}
	crlB := func(n int64) []byte {
		now := time.Now().Add(-time.Minute)
		d, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(n), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour)}, caB.Cert, caB.Key)
		if err != nil {
			b.Fatal(err)
		}
		return pki.CRLPEM(d)
	}
	tr := pkitest.NewTree(b)
	srvCA := pkitest.NewCA(b, "bench server CA")
	tr.Server("a", srvCA.Server("a.example"))
	tr.Trust("s", "a.pem", pki.CertPEM(caA))
	tr.Trust("s", "a.crl", pki.CRLPEM(der))
	tr.Trust("s", "b.pem", pki.CertPEM(caB.Cert))
	tr.Trust("s", "b.crl", crlB(1))
	long := time.Now().Add(-time.Hour)
	for _, f := range []string{"a.pem", "a.crl"} {
		if err := os.Chtimes(filepath.Join(tr.Certs, "trust", "s", f), long, long); err != nil {
			b.Fatal(err)
		}
	}
	tr.WriteConfig("l.yaml", `listeners:
  - name: a
    address: 127.0.0.1:8443
    certificates: [a]
    client_auth: {mode: verify, trust_store: s}
    routes: [{path_prefix: /, backend: demo}]
backends:
  - name: demo
    endpoints: ["127.0.0.1:8080"]
`)
	mem, err := config.NewTrustMemory("", false)
	if err != nil {
		b.Fatal(err)
	}
	ld := config.Loader{Trust: mem}
	srv, err := xds.NewServer(xds.ServerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	publish := func() {
		m, err := ld.Load(tr.Certs, tr.Config)
		if err != nil || len(m.Problems) > 0 {
			b.Fatalf("load: %v %v", err, m.Problems)
		}
		if _, err := srv.Publisher().Update(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	publish()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, nil) }()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ads, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for n := range srv.Publisher().Served().Snapshot.Resources[5].Items {
		names = append(names, n)
	}
	req := &discoverygrpc.DiscoveryRequest{Node: &core.Node{Id: "bench"}, TypeUrl: resource.SecretType, ResourceNames: names}
	recv := func() {
		if err := ads.Send(req); err != nil {
			b.Fatal(err)
		}
		resp, err := ads.Recv()
		if err != nil {
			b.Fatal(err)
		}
		req.VersionInfo, req.ResponseNonce = resp.GetVersionInfo(), resp.GetNonce()
	}
	recv()
	n := int64(2)
	for b.Loop() {
		b.StopTimer()
		tr.Trust("s", "b.crl", crlB(n))
		n++
		b.StartTimer()
		peak, live := heapprobe.Peak(func() any {
			publish()
			recv()
			return nil
		})
		reportMB(b, peak, live)
	}
}
