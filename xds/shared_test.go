package xds

import (
	"slices"
	"strings"
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

// A last good part that can no longer join the current listeners of its
// address is withdrawn with an error, as a kept listener whose address a
// fresh one took is; the current ones are served.
func TestPublisherSharedAddressWithdrawsConflictingLastGood(t *testing.T) {
	e := newPubEnv(t)
	e.tr.WriteConfig("a.yaml", `listeners:
  - name: a
    address: 127.0.0.1:8443
    server_names: [a.example]
    certificates: [a]
    routes: [{path_prefix: /, backend: demo}]
backends:
  - name: demo
    endpoints: ["127.0.0.1:8080"]
`)
	cYAML := `listeners:
  - name: b
    address: 127.0.0.1:8443
    certificates: [b]
    routes: [{path_prefix: /, backend: demo-b}]
  - name: c
    address: 127.0.0.1:8443
    server_names: [NAMES]
    certificates: [b]
    routes: [{path_prefix: /, backend: demo-b}]
backends:
  - name: demo-b
    endpoints: ["127.0.0.1:9090"]
`
	e.tr.WriteConfig("b.yaml", strings.Replace(cYAML, "NAMES", "c.example", 1))
	e.mustUpdate()
	if got := e.sharedChains(); !slices.Equal(got, []string{"a/a", "b/b", "c/b"}) {
		t.Fatalf("chains %v", got)
	}
	// a's file breaks (a is kept at its last good version), and c takes
	// a's server name meanwhile.
	e.tr.WriteConfig("a.yaml", "listeners: [\n")
	e.tr.WriteConfig("b.yaml", strings.Replace(cYAML, "NAMES", "a.example", 1))
	res := e.mustUpdate()
	if !slices.Equal(res.Serving, []string{"b", "c"}) || len(res.LastGood) != 0 {
		t.Fatalf("serving %v, last good %v", res.Serving, res.LastGood)
	}
	var withdrawn bool
	for _, le := range res.Errors {
		withdrawn = withdrawn || le.Listener == "a" && strings.Contains(le.Error(), "last good version withdrawn: it cannot share address 127.0.0.1:8443")
	}
	if !withdrawn {
		t.Errorf("errors %v, want a withdrawn", res.Errors)
	}
	if got := e.sharedChains(); !slices.Equal(got, []string{"b/b", "c/b"}) {
		t.Fatalf("chains %v", got)
	}
}
