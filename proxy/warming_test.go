package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

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
	waitUpdated(t, px.Proxy, "listener to warm on its cluster", func() bool {
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
	waitUpdated(t, px.Proxy, "the cluster to arrive", func() bool { return len(px.Status().Clusters) == 1 })
	if px.Ready() {
		t.Fatal("ready although no Listener response was accepted")
	}
	a.set((&resourceSet{}).add(backend...).add(good...).add(keyPairSecret("server/proxy", server)))
	waitUpdated(t, px.Proxy, "ready once the listener is accepted and bound", px.Ready)
	if px.ListenerAddr("public") == nil {
		t.Fatal("ready, but the listener is not bound")
	}
}

// gatedBackend answers "name" on every path but /healthz, which it holds
// until its gate opens (or the probe gives up). It tells probed when the
// first health check arrives.
type gatedBackend struct {
	*httptest.Server
	gate   chan struct{}
	probed chan struct{}
	once   sync.Once
}

func startGatedBackend(t testing.TB, name string) *gatedBackend {
	g := &gatedBackend{gate: make(chan struct{}), probed: make(chan struct{})}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			_, _ = io.WriteString(w, name)
			return
		}
		g.once.Do(func() { close(g.probed) })
		select {
		case <-g.gate:
			_, _ = io.WriteString(w, "ok")
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gatedBackend) addr() string { return strings.TrimPrefix(g.URL, "http://") }

// waitProbed waits, with a deadline, for the backend's first health check.
func (g *gatedBackend) waitProbed(t testing.TB) {
	t.Helper()
	select {
	case <-g.probed:
	case <-time.After(15 * time.Second):
		t.Fatal("timed out waiting for the first health check")
	}
}

// healthCheckedCluster is backendSpec's cluster with health checks on
// /healthz that time out after timeout.
func healthCheckedCluster(name string, timeout time.Duration, endpoints ...string) []types.Resource {
	rs := backendSpec{name: name, endpoints: endpoints, hcPath: "/healthz"}.build()
	rs[0].(*clusterv3.Cluster).HealthChecks[0].Timeout = durationpb.New(timeout)
	return rs
}

func listenerWarming(px *runningProxy, name string) string {
	for _, ls := range px.Status().Listeners {
		if ls.Name == name {
			return ls.Warming
		}
	}
	return ""
}

// TestListenerWarmsUntilFirstHealthCheck shows that a listener whose route
// names a health-checked cluster does not start until that cluster's first
// health-check round has finished (Envoy's cluster warming), so the first
// request after start is served, not answered 503 "no healthy upstream".
func TestListenerWarmsUntilFirstHealthCheck(t *testing.T) {
	serverCA := pkitest.NewCA(t, "Server Root CA")
	b := startGatedBackend(t, "backend 1")
	l := listenerSpec{name: "public", certs: []string{"server/proxy"}, mode: "off", routes: [][2]string{{"/", "app"}}}
	a := startADS(t, "127.0.0.1:0")
	a.set((&resourceSet{}).add(l.build()...).add(keyPairSecret("server/proxy", serverCA.Server("proxy.test"))).
		add(healthCheckedCluster("app", time.Minute, b.addr())...))
	px := startProxy(t, a.addr)
	b.waitProbed(t)
	want := "first health check of cluster app"
	waitUpdated(t, px.Proxy, "the listener to start or to warm on the health check", func() bool {
		return px.ListenerAddr("public") != nil || listenerWarming(px, "public") == want
	})
	c := httpsClient(serverCA.Cert, nil, false)
	if ln := px.ListenerAddr("public"); ln != nil {
		code, body, err := get(c, "https://"+ln.String()+"/")
		t.Fatalf("listener started before the first health check of its cluster: GET / = %d %q %v", code, body, err)
	}
	if px.Ready() {
		t.Fatal("ready while a listener warms on a health check")
	}
	close(b.gate)
	addr := px.addr(t, "public")
	if code, body, err := get(c, "https://"+addr+"/"); err != nil || code != 200 || body != "backend 1" {
		t.Fatalf("first request once the listener started: %d %q %v", code, body, err)
	}
	waitUpdated(t, px.Proxy, "ready once the first health check passed", px.Ready)
}

// TestListenerStartsAfterFailedFirstHealthCheck shows that a first round
// that fails (a backend that never answers /healthz: the check times out)
// ends the warming too, as in Envoy: a dead backend never holds the
// listener back; it answers 503 instead.
func TestListenerStartsAfterFailedFirstHealthCheck(t *testing.T) {
	serverCA := pkitest.NewCA(t, "Server Root CA")
	b := startGatedBackend(t, "backend 1") // the gate never opens
	l := listenerSpec{name: "public", certs: []string{"server/proxy"}, mode: "off", routes: [][2]string{{"/", "app"}}}
	a := startADS(t, "127.0.0.1:0")
	a.set((&resourceSet{}).add(l.build()...).add(keyPairSecret("server/proxy", serverCA.Server("proxy.test"))).
		add(healthCheckedCluster("app", 300*time.Millisecond, b.addr())...))
	px := startProxy(t, a.addr)
	b.waitProbed(t)
	addr := px.addr(t, "public") // bounded by the 300ms health check timeout
	c := httpsClient(serverCA.Cert, nil, false)
	if code, _, err := get(c, "https://"+addr+"/"); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("request to a cluster whose only host failed its first check: %d %v, want 503", code, err)
	}
	waitUpdated(t, px.Proxy, "ready although the first health check failed", px.Ready)
}

// TestWarmClusterUpdateDoesNotRewarm shows that a cluster update keeping its
// hosts keeps their health (no warming again), and that a host added to a
// warm cluster does not warm the cluster but gets no traffic until its first
// check passes (Envoy marks it pending, failed active health check).
func TestWarmClusterUpdateDoesNotRewarm(t *testing.T) {
	serverCA := pkitest.NewCA(t, "Server Root CA")
	b1 := startGatedBackend(t, "backend 1")
	close(b1.gate)
	b2 := startGatedBackend(t, "backend 2")
	l := listenerSpec{name: "public", certs: []string{"server/proxy"}, mode: "off", routes: [][2]string{{"/", "app"}}}
	a := startADS(t, "127.0.0.1:0")
	base := func() *resourceSet {
		return (&resourceSet{}).add(l.build()...).add(keyPairSecret("server/proxy", serverCA.Server("proxy.test")))
	}
	a.set(base().add(healthCheckedCluster("app", time.Minute, b1.addr())...))
	px := startProxy(t, a.addr)
	addr := px.addr(t, "public")
	waitUpdated(t, px.Proxy, "ready", px.Ready)
	c := httpsClient(serverCA.Cert, nil, false)

	updated := healthCheckedCluster("app", time.Minute, b1.addr())
	updated[0].(*clusterv3.Cluster).ConnectTimeout = durationpb.New(4 * time.Second)
	v := px.Status().Versions[resource.ClusterType]
	a.set(base().add(updated...))
	waitUpdated(t, px.Proxy, "the cluster update", func() bool { return px.Status().Versions[resource.ClusterType] != v })
	if w := listenerWarming(px, "public"); w != "" || !px.Ready() {
		t.Fatalf("a cluster update with the same hosts warmed the listener again: %q", w)
	}
	if code, body, err := get(c, "https://"+addr+"/"); err != nil || code != 200 || body != "backend 1" {
		t.Fatalf("after a cluster update with the same hosts: %d %q %v", code, body, err)
	}

	v = px.Status().Versions[resource.EndpointType]
	a.set(base().add(healthCheckedCluster("app", time.Minute, b1.addr(), b2.addr())...))
	waitUpdated(t, px.Proxy, "the new host", func() bool { return px.Status().Versions[resource.EndpointType] != v })
	b2.waitProbed(t)
	if w := listenerWarming(px, "public"); w != "" || !px.Ready() {
		t.Fatalf("a host added to a warm cluster warmed the listener again: %q", w)
	}
	for range 6 {
		if code, body, err := get(c, "https://"+addr+"/"); err != nil || code != 200 || body != "backend 1" {
			t.Fatalf("while the new host awaits its first check: %d %q %v (want backend 1 only)", code, body, err)
		}
	}
	close(b2.gate)
	waitFor(t, "backend 2 to get traffic once checked", func() bool {
		_, body, _ := get(c, "https://"+addr+"/")
		return body == "backend 2"
	})
}
