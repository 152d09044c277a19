package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/xds/client"
)

// view turns a resource set into the client's view of it.
func (rs *resourceSet) view() client.Resources {
	res := client.Resources{
		Listeners: map[string]*listenerv3.Listener{}, Routes: map[string]*routev3.RouteConfiguration{},
		Clusters: map[string]*clusterv3.Cluster{}, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets: map[string]*tlsv3.Secret{}, Versions: map[string]string{},
	}
	for _, r := range append(append(append(append(append([]types.Resource{}, rs.listeners...), rs.routes...), rs.clusters...), rs.endpoints...), rs.secrets...) {
		switch m := r.(type) {
		case *listenerv3.Listener:
			res.Listeners[m.GetName()] = m
		case *routev3.RouteConfiguration:
			res.Routes[m.GetName()] = m
		case *clusterv3.Cluster:
			res.Clusters[m.GetName()] = m
		case *endpointv3.ClusterLoadAssignment:
			res.Endpoints[m.GetClusterName()] = m
		case *tlsv3.Secret:
			res.Secrets[m.GetName()] = m
		}
	}
	return res
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestPrepareParsesSecretsOnce: the candidate serves the Secrets that the
// check of the same change parsed (a 1,000,000-serial CRL is parsed once
// per update), and a Secret that is another message is parsed anew.
func TestPrepareParsesSecretsOnce(t *testing.T) {
	p := New(Options{})
	ca := pkitest.NewCA(t, "Reuse CA")
	trust := trustSecret("trust/clients", ca.CertPEM(), ca.CRLPEM())
	cur := p.state.Load()
	parsed, err := p.check([]proto.Message{trust}, cur, true)
	if err != nil || parsed[trust] == nil {
		t.Fatalf("valid trust Secret: parsed %v, %v", parsed, err)
	}
	p.mu.Lock()
	c := p.prepare(client.Resources{Secrets: map[string]*tlsv3.Secret{"trust/clients": trust}}, cur, parsed)
	other := proto.Clone(trust).(*tlsv3.Secret)
	other.GetValidationContext().Crl = nil
	c2 := p.prepare(client.Resources{Secrets: map[string]*tlsv3.Secret{"trust/clients": other}}, cur, parsed)
	p.mu.Unlock()
	if got := c.next.secrets["trust/clients"]; got != parsed[trust] {
		t.Error("the candidate parsed the Secret again instead of using the check's")
	}
	if got := c.parsedSecrets()[trust]; got != parsed[trust] {
		t.Error("a stale candidate built again would parse its Secret again")
	}
	if got := c2.next.secrets["trust/clients"]; got == nil || got == parsed[trust] || got.crls.Len() != 0 {
		t.Errorf("a Secret never checked was not parsed anew: %+v", got)
	}
}

// TestCommitServesPreparedCandidate: Prepare builds the state once and
// serves nothing; its commit serves that candidate without building again
// and closes Updated.
func TestCommitServesPreparedCandidate(t *testing.T) {
	p := New(Options{DrainTimeout: time.Second})
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	ca := pkitest.NewCA(t, "Commit CA")
	rs := (&resourceSet{}).add(listenerSpec{name: "l", certs: []string{"server/l"}, mode: "off", routes: [][2]string{{"/", "app"}}}.build()...)
	rs.add(backendSpec{name: "app", endpoints: []string{"127.0.0.1:9"}}.build()...)
	rs.add(keyPairSecret("server/l", ca.Server("l.test")))
	view := rs.view()
	before, updated := p.state.Load(), p.Updated()
	builds := p.builds.Load()

	commit, err := p.Prepare(client.Change{TypeURL: resource.SecretType, Resources: []proto.Message{view.Secrets["server/l"]}, View: view})
	if err != nil {
		t.Fatalf("Prepare refused a valid change: %v", err)
	}
	if n := p.builds.Load() - builds; n != 1 {
		t.Fatalf("Prepare built %d states, want 1", n)
	}
	if p.state.Load() != before || closed(updated) {
		t.Fatal("Prepare served its candidate before the commit")
	}
	commit()
	if n := p.builds.Load() - builds; n != 1 {
		t.Errorf("commit built the state again: %d builds for one accepted update", n)
	}
	if !closed(updated) {
		t.Error("commit did not close Updated")
	}
	if p.ListenerAddr("l") == nil || p.state.Load().secrets["server/l"] == nil {
		t.Error("the committed candidate is not served")
	}
	if closed(p.Updated()) {
		t.Error("Updated after the commit is already closed")
	}
}

// TestRefusedChangeBuildsNothing: a change that Prepare refuses (the client
// NACKs it) builds no candidate and leaves the served state alone.
func TestRefusedChangeBuildsNothing(t *testing.T) {
	p := New(Options{})
	bad := trustSecret("trust/clients", []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), nil)
	before, updated, builds := p.state.Load(), p.Updated(), p.builds.Load()
	view := client.Resources{Secrets: map[string]*tlsv3.Secret{"trust/clients": bad}}
	commit, err := p.Prepare(client.Change{TypeURL: resource.SecretType, Resources: []proto.Message{bad}, View: view})
	if err == nil || commit != nil {
		t.Fatalf("Prepare accepted a bad Secret: %v", err)
	}
	if p.builds.Load() != builds || p.state.Load() != before || closed(updated) {
		t.Error("a refused change built or served a state")
	}
}

// TestStaleCandidateRebuilt: a candidate prepared before another commit
// (a warmed cluster's rebuild) is built again on the state now served
// rather than undoing that commit.
func TestStaleCandidateRebuilt(t *testing.T) {
	p := New(Options{})
	ca := pkitest.NewCA(t, "Stale CA")
	a, b := trustSecret("trust/a", ca.CertPEM(), nil), trustSecret("trust/b", ca.CertPEM(), nil)
	first := client.Resources{Secrets: map[string]*tlsv3.Secret{"trust/a": a}}
	commit, err := p.Prepare(client.Change{TypeURL: resource.SecretType, Resources: []proto.Message{a}, View: first})
	if err != nil {
		t.Fatal(err)
	}
	p.Update(client.Resources{Secrets: map[string]*tlsv3.Secret{"trust/b": b}})
	afterUpdate := p.state.Load()
	commit()
	st := p.state.Load()
	if st.secrets["trust/a"] == nil || st.secrets["trust/b"] != nil {
		t.Errorf("committed the stale candidate's resources wrongly: %v", sortedKeys(st.secrets))
	}
	if st == afterUpdate {
		t.Error("the stale candidate was not committed")
	}
}

// TestOneBuildPerAcceptedUpdate: through a real ADS stream, the proxy builds
// exactly one state per response the client accepts (no health checks, so
// no warm-up rebuild).
func TestOneBuildPerAcceptedUpdate(t *testing.T) {
	ca := pkitest.NewCA(t, "Builds CA")
	be := startBackend(t, "backend")
	a := startADS(t, "127.0.0.1:0")
	set := func(cert *pkitest.Leaf) {
		rs := (&resourceSet{}).add(listenerSpec{name: "l", certs: []string{"server/l"}, mode: "off", routes: [][2]string{{"/", "app"}}}.build()...)
		rs.add(backendSpec{name: "app", endpoints: []string{be.addr()}}.build()...)
		rs.add(keyPairSecret("server/l", cert))
		a.set(rs)
	}
	set(ca.Server("l.test"))
	p := New(Options{DrainTimeout: time.Second})
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	// Count the commits the client makes, before each runs: once it has
	// closed Updated the count is final.
	var acks atomic.Uint64
	cfg := p.ClientConfig(client.Config{Target: a.addr, NodeID: testNode, Insecure: true})
	prepare := cfg.Prepare
	cfg.Prepare = func(ch client.Change) (func(), error) {
		commit, err := prepare(ch)
		if err != nil {
			return nil, err
		}
		return func() { acks.Add(1); commit() }, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx, cfg) }()
	t.Cleanup(func() { cancel(); <-done })
	waitUpdated(t, p, "the listener", func() bool { return p.ListenerAddr("l") != nil })
	for range 3 {
		v := p.Status().Versions[resource.SecretType]
		set(ca.Server("l.test"))
		waitUpdated(t, p, "the rotated certificate", func() bool { return p.Status().Versions[resource.SecretType] != v })
	}
	if b, n := p.builds.Load(), acks.Load(); b != n {
		t.Errorf("%d states built for %d accepted responses; want one each", b, n)
	}
}

// TestCommitWhileHandshaking: commits of prepared candidates (certificate
// rotations) run while clients handshake; -race checks that a handshake
// only ever reads a published state, and every handshake succeeds.
func TestCommitWhileHandshaking(t *testing.T) {
	ca := pkitest.NewCA(t, "Race CA")
	p := New(Options{DrainTimeout: time.Second})
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	resources := func() client.Resources {
		rs := (&resourceSet{}).add(listenerSpec{name: "l", certs: []string{"server/l"}, mode: "off", routes: [][2]string{{"/", "app"}}}.build()...)
		rs.add(backendSpec{name: "app", endpoints: []string{"127.0.0.1:9"}}.build()...)
		rs.add(keyPairSecret("server/l", ca.Server("l.test")))
		return rs.view()
	}
	p.Update(resources())
	addr := p.ListenerAddr("l").String()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
					&tls.Config{RootCAs: pool(ca.Cert), ServerName: "l.test", NextProtos: []string{"http/1.1"}})
				if err != nil {
					t.Errorf("handshake during commits: %v", err)
					return
				}
				c.Close()
			}
		}()
	}
	handshakes := make(chan struct{})
	go func() { wg.Wait(); close(handshakes) }()
	for commits := 0; commits < 2 || !closed(handshakes); commits++ {
		view := resources()
		commit, err := p.Prepare(client.Change{TypeURL: resource.SecretType, Resources: []proto.Message{view.Secrets["server/l"]}, View: view})
		if err != nil {
			t.Fatal(err)
		}
		commit()
	}
}
