package proxy

import (
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
