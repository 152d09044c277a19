package proxy

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"testing"

	"github.com/certplane/certplane/pki/pkitest"
)

// TestListenerWarmsUntilItsClustersExist shows that a listener whose routes
// name a cluster the proxy does not have yet is not started (Envoy brings
// clusters up before listeners, so its first request never meets a missing
// cluster), and that it starts as soon as the cluster arrives.
func TestListenerWarmsUntilItsClustersExist(t *testing.T) {
	serverCA := pkitest.NewCA(t, "Server Root CA")
	server := serverCA.Server("proxy.test")
	l := listenerSpec{name: "public", certs: []string{"server/proxy"}, mode: "off", routes: [][2]string{{"/", "app"}}}
	a := startADS(t, "127.0.0.1:0")
	rs := (&resourceSet{}).add(l.build()...).add(keyPairSecret("server/proxy", server))
	a.set(rs)
	px := startProxy(t, a.addr)
	waitFor(t, "listener to warm on its cluster", func() bool {
		for _, ls := range px.Status().Listeners {
			if ls.Name == "public" && ls.Warming == "cluster app" {
				return true
			}
		}
		return false
	})
	if px.ListenerAddr("public") != nil {
		t.Fatal("listener started before the cluster its route names")
	}
	b := startBackend(t, "backend 1")
	a.set(rs.add(backendSpec{name: "app", endpoints: []string{b.addr()}}.build()...))
	addr := px.addr(t, "public")
	c := httpsClient(serverCA.Cert, nil, false)
	if code, body, err := get(c, "https://"+addr+"/"); err != nil || code != 200 || body != "backend 1" {
		t.Fatalf("after the cluster arrived: %d %q %v", code, body, err)
	}
}

// TestNotReadyBeforeListeners shows that /readyz waits for an accepted
// Listener response and for every listener to be bound, as Envoy's init
// manager does: a proxy that has clusters but whose first Listener response
// it NACKed serves nothing and must not be reported ready (the demo and the
// compose healthchecks rely on it).
func TestNotReadyBeforeListeners(t *testing.T) {
	serverCA := pkitest.NewCA(t, "Server Root CA")
	server := serverCA.Server("proxy.test")
	b := startBackend(t, "backend 1")
	a := startADS(t, "127.0.0.1:0")
	l := listenerSpec{name: "public", certs: []string{"server/proxy"}, mode: "off", routes: [][2]string{{"/", "app"}}}
	good := l.build()
	bad := proto.Clone(good[0]).(*listenerv3.Listener)
	bad.TcpBacklogSize = wrapperspb.UInt32(128) // not implemented: NACKed
	backend := backendSpec{name: "app", endpoints: []string{b.addr()}}.build()
	a.set((&resourceSet{}).add(backend...).add(bad).add(good[1:]...).add(keyPairSecret("server/proxy", server)))
	px := startProxy(t, a.addr)
	waitFor(t, "the listener to be NACKed", func() bool { return len(a.nackList()) > 0 })
	waitFor(t, "the cluster to arrive", func() bool { return len(px.Status().Clusters) == 1 })
	if px.Ready() {
		t.Fatal("ready although no Listener response was accepted")
	}
	a.set((&resourceSet{}).add(backend...).add(good...).add(keyPairSecret("server/proxy", server)))
	waitFor(t, "ready once the listener is accepted and bound", px.Ready)
	if px.ListenerAddr("public") == nil {
		t.Fatal("ready, but the listener is not bound")
	}
}
