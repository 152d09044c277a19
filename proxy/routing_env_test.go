package proxy

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/pki/pkitest"
)

// routingEnv serves a listener whose RouteConfiguration and Clusters are
// exactly what certplane's Envoy builders emit for a config model: the
// proxy is tested on the resources Envoy gets.
type routingEnv struct {
	ads      *adsServer
	px       *runningProxy
	serverCA *pkitest.CA
	addr     string
	client   *http.Client
}

// newRoutingEnv serves listener l (mode off) and backends, each with its
// endpoints given as host:port.
func newRoutingEnv(t testing.TB, l *config.Listener, backends ...*config.Backend) *routingEnv {
	t.Helper()
	e := &routingEnv{serverCA: pkitest.NewCA(t, "Server Root CA")}
	server := e.serverCA.Server("proxy.test")
	rs := &resourceSet{}
	rs.add((listenerSpec{name: l.Name, certs: []string{"server/proxy"}, mode: "off"}).build()...)
	// The builder's route configuration, not the harness's.
	rs.routes = []types.Resource{envoy.RouteConfiguration(l, envoy.Options{})}
	for _, b := range backends {
		c, err := envoy.Cluster(b, envoy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rs.add(c, envoy.ClusterLoadAssignment(b))
	}
	rs.add(keyPairSecret("server/proxy", server))
	e.ads = startADS(t, "127.0.0.1:0")
	e.ads.set(rs)
	e.px = startProxy(t, e.ads.addr)
	e.addr = e.px.addrOrNACK(t, e.ads, l.Name)
	e.client = httpsClient(e.serverCA.Cert, nil, true)
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

func (e *routingEnv) url(path string) string { return "https://" + e.addr + path }

// do sends one request and returns its status and body.
func (e *routingEnv) do(t testing.TB, method, host, path string, header http.Header, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.url(path), body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s (host %q): %v", method, path, host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}

// endpointsOf makes config endpoints of loopback host:port addresses.
func endpointsOf(t testing.TB, addrs ...string) []config.Endpoint {
	t.Helper()
	var out []config.Endpoint
	for _, a := range addrs {
		host, port, ok := strings.Cut(a, ":")
		p, err := strconv.Atoi(port)
		if !ok || err != nil {
			t.Fatalf("endpoint %q", a)
		}
		out = append(out, config.Endpoint{Host: host, Port: uint32(p)})
	}
	return out
}
