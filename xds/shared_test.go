package xds

import (
	"slices"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// sharedYAML puts listeners a (mTLS, server name a.example) and b (the
// default) on one address.
const sharedYAML = `listeners:
  - name: a
    address: 127.0.0.1:8443
    server_names: [a.example]
    certificates: [a]
    client_auth: {mode: verify, trust_store: clients}
    routes: [{path_prefix: /, backend: demo}]
  - name: b
    address: 127.0.0.1:8443
    certificates: [b]
    routes: [{path_prefix: /, backend: demo}]
backends:
  - name: demo
    endpoints: ["127.0.0.1:8080"]
`

func (e *pubEnv) sharedChains() []string {
	e.t.Helper()
	lis := e.served(resource.ListenerType)
	if names := sortedKeys(lis); !slices.Equal(names, []string{"shared/127.0.0.1:8443"}) {
		e.t.Fatalf("listeners %v, want the one shared listener", names)
	}
	var out []string
	for _, fc := range lis["shared/127.0.0.1:8443"].(*listenerv3.Listener).GetFilterChains() {
		out = append(out, fc.GetName())
	}
	return out
}

// Listeners on one address are one Listener with a chain each; when one of
// them breaks, its last good chain stays beside the other's current one.
func TestPublisherSharedAddress(t *testing.T) {
	e := newPubEnv(t)
	e.tr.Remove("config/b.yaml")
	e.tr.WriteConfig("a.yaml", sharedYAML)
	res := e.mustUpdate()
	if !slices.Equal(res.Serving, []string{"a", "b"}) {
		t.Fatalf("serving %v", res.Serving)
	}
	if got := e.sharedChains(); !slices.Equal(got, []string{"a/a", "b/b"}) {
		t.Fatalf("chains %v", got)
	}
	if got := e.names(resource.RouteType); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("routes %v", got)
	}

	// a's certificate breaks: a is served at its last good version, b
	// keeps serving, on the same Listener.
	e.tr.Write("certs/server/a/tls.crt", []byte("not a certificate"), 0o644)
	res = e.mustUpdate()
	if !slices.Equal(res.Serving, []string{"b"}) || !slices.Equal(res.LastGood, []string{"a"}) {
		t.Fatalf("serving %v, last good %v", res.Serving, res.LastGood)
	}
	if got := e.sharedChains(); !slices.Equal(got, []string{"a/a", "b/b"}) {
		t.Fatalf("chains %v", got)
	}
}
