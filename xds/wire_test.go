package xds

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy/envoytest"
	"github.com/certplane/certplane/internal/rope"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func joined(s *spliced) []byte {
	var out []byte
	for _, p := range s.pieces {
		out = append(out, p...)
	}
	return out
}

// bigSecrets are Secrets with large bytes fields in every place a trust
// or key Secret has them.
func bigSecrets(t *testing.T) []*tlsv3.Secret {
	inline := func(b []byte) *core.DataSource {
		return &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b}}
	}
	return []*tlsv3.Secret{
		{Name: "trust", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(randomBytes(t, 300<<10)), Crl: inline(randomBytes(t, 3<<20)), OnlyVerifyLeafCertCrl: true,
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS}},
		}}},
		{Name: "small-ca-big-crl", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline([]byte("ca")), Crl: inline(randomBytes(t, 1<<20)),
		}}},
		{Name: "key", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(randomBytes(t, 400<<10)), PrivateKey: inline(randomBytes(t, 2<<10)),
		}}},
	}
}

// served is every resource of a published model with a CRL of many serials.
func scaledResources(t *testing.T) []types.Resource {
	p := NewPublisher(cache.NewSnapshotCache(true, nodeHash{}, nil), "")
	if _, err := p.Update(context.Background(), envoytest.ScaledModel(t, 3, 20_000)); err != nil {
		t.Fatal(err)
	}
	var out []types.Resource
	for _, rs := range p.Served().Snapshot.Resources {
		for _, it := range rs.Items {
			out = append(out, it.Resource)
		}
	}
	return out
}

// TestSpliceEqualsMarshal: the spliced encoding of a resource is its
// deterministic marshalling, byte for byte, whichever fields are kept in
// place (every bytes field, at minBytes 1).
func TestSpliceEqualsMarshal(t *testing.T) {
	var all []types.Resource
	for _, s := range bigSecrets(t) {
		all = append(all, s)
	}
	all = append(all, scaledResources(t)...)
	for _, r := range all {
		want, err := cache.MarshalResource(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, min := range []int{1, 1 << 10, lazyMinBytes} {
			s, err := splice(r, min)
			if err != nil {
				t.Fatalf("%s: %v", cache.GetResourceName(r), err)
			}
			if s == nil {
				continue
			}
			if got := joined(s); !bytes.Equal(got, want) {
				t.Errorf("%s (min %d): spliced encoding differs from proto.Marshal (%d vs %d bytes)", cache.GetResourceName(r), min, len(got), len(want))
			}
		}
	}
	// The large fields are referenced, not copied.
	sec := bigSecrets(t)[0]
	s, err := splice(sec, lazyMinBytes)
	if err != nil || s == nil {
		t.Fatalf("splice: %v %v", s, err)
	}
	crl := sec.GetValidationContext().GetCrl().GetInlineBytes()
	found := false
	for _, p := range s.pieces {
		if len(p) == len(crl) && &p[0] == &crl[0] {
			found = true
		}
	}
	if !found {
		t.Error("the CRL bytes were copied into the encoding")
	}
}

// TestWireCodecSendsMarshalledBytes serves a model with a large CRL from
// a Server and checks that what an ADS client receives, SotW and delta, is
// each resource's marshalling, and that the large Secret went through the
// lazy path.
// The rope model's trust Secret holds a rope's token: what the client
// receives is the marshalling of the Secret with the CRLs joined.
func TestWireCodecSendsMarshalledBytes(t *testing.T) {
	t.Run("bytes", func(t *testing.T) { wireCodecSends(t, envoytest.ScaledModel(t, 2, 20_000)) })
	t.Run("rope", func(t *testing.T) { wireCodecSends(t, envoytest.ScaledRopeModel(t, 2, 20_000)) })
}

func wireCodecSends(t *testing.T, m *config.Model) {
	s, err := NewServer(ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publisher().Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	lazy := 0
	for name, it := range s.Publisher().Served().Snapshot.Resources[types.Secret].Items {
		full, err := rope.Materialize(it.Resource)
		if err != nil {
			t.Fatal(err)
		}
		b, err := cache.MarshalResource(full)
		if err != nil {
			t.Fatal(err)
		}
		want[name] = b
		sum, err := s.Publisher().sums.sum(it.Resource)
		if err != nil {
			t.Fatal(err)
		}
		if l := s.Publisher().wire[sum]; l != nil {
			lazy++
		}
	}
	if lazy == 0 {
		t.Fatal("no Secret of the scaled model is lazy: the test does not cover the codec")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis, nil) }()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	check := func(how string, got map[string]*anypb.Any) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: %d secrets, want %d", how, len(got), len(want))
		}
		for n, a := range got {
			if !bytes.Equal(a.GetValue(), want[n]) {
				t.Errorf("%s: secret %q: received %d bytes, not its marshalling (%d bytes)", how, n, len(a.GetValue()), len(want[n]))
			}
			var sec tlsv3.Secret
			if err := a.UnmarshalTo(&sec); err != nil || sec.GetName() != n {
				t.Errorf("%s: secret %q: %v (name %q)", how, n, err, sec.GetName())
			}
		}
	}
	client := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn)

	ads, err := client.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ads.Send(&discoverygrpc.DiscoveryRequest{Node: &core.Node{Id: "n"}, TypeUrl: resource.SecretType, ResourceNames: names}); err != nil {
		t.Fatal(err)
	}
	resp, err := ads.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*anypb.Any{}
	for _, a := range resp.GetResources() {
		var sec tlsv3.Secret
		if err := a.UnmarshalTo(&sec); err != nil {
			t.Fatal(err)
		}
		got[sec.GetName()] = a
	}
	check("SotW", got)

	delta, err := client.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := delta.Send(&discoverygrpc.DeltaDiscoveryRequest{Node: &core.Node{Id: "d"}, TypeUrl: resource.SecretType, ResourceNamesSubscribe: names}); err != nil {
		t.Fatal(err)
	}
	dresp, err := delta.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]*anypb.Any{}
	for _, r := range dresp.GetResources() {
		got[r.GetName()] = r.GetResource()
	}
	check("delta", got)
}

// TestWireCodecRefusesLostStub: a stub whose resource is unknown fails the
// response rather than reaching a client as a resource.
func TestWireCodecRefusesLostStub(t *testing.T) {
	stub := append(append([]byte{}, stubMagic[:]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	resp := &discoverygrpc.DiscoveryResponse{TypeUrl: resource.SecretType, Resources: []*anypb.Any{{TypeUrl: resource.SecretType, Value: stub}}}
	if _, err := newWireCodec().Marshal(resp); err == nil {
		t.Fatal("a response with an unknown stub was encoded")
	}
	// A response without stubs is the stock codec's.
	plain := &discoverygrpc.DiscoveryResponse{VersionInfo: "1", TypeUrl: resource.SecretType}
	out, err := newWireCodec().Marshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(plain)
	if !bytes.Equal(out.Materialize(), want) {
		t.Error("a plain response is not encoded as proto.Marshal does")
	}
}

// TestWireResourcesRebind: a Secret rebuilt with the same content keeps
// its stub (delta clients see no change) and is sent from the new bytes,
// so the old ones are not kept alive.
func TestWireResourcesRebind(t *testing.T) {
	s1 := bigSecrets(t)[1]
	s2 := proto.Clone(s1).(*tlsv3.Secret)
	snap := func(s *tlsv3.Secret) *cache.Snapshot {
		out := &cache.Snapshot{}
		out.Resources[types.Secret] = cache.NewResources("v", []types.Resource{s})
		return out
	}
	w, h := wireResources{}, newHasher()
	a, err := w.snapshot(snap(s1), h)
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.snapshot(snap(s2), h)
	if err != nil {
		t.Fatal(err)
	}
	la := a.Resources[types.Secret].Items[s1.GetName()].Resource.(*lazyResource)
	lb := b.Resources[types.Secret].Items[s1.GetName()].Resource.(*lazyResource)
	if la.h != lb.h {
		t.Error("an equal Secret got a new stub")
	}
	crl := s2.GetValidationContext().GetCrl().GetInlineBytes()
	found := false
	for _, p := range lb.h.enc.Load().pieces {
		if len(p) == len(crl) && &p[0] == &crl[0] {
			found = true
		}
	}
	if !found {
		t.Error("the stub still sends the replaced Secret's bytes")
	}
	want, _ := cache.MarshalResource(s2)
	if got := joined(lb.h.enc.Load()); !bytes.Equal(got, want) {
		t.Error("rebound encoding differs from the marshalling")
	}
}
