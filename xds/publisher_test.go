package xds

import (
	"encoding/json"
	"log/slog"
	"strings"

	"context"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"slices"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/status"
)

const twoListeners = `listeners:
  - name: a
    address: 127.0.0.1:8443
    certificates: [a]
    client_auth: {mode: verify, trust_store: clients}
    routes: [{path_prefix: /, backend: demo}]
backends:
  - name: demo
    endpoints: ["127.0.0.1:8080"]
`

const listenerB = `listeners:
  - name: b
    address: 127.0.0.1:9443
    certificates: [b]
    routes: [{path_prefix: /, backend: demo-b}]
backends:
  - name: demo-b
    endpoints: ["127.0.0.1:9090"]
`

type pubEnv struct {
	t   *testing.T
	tr  *pkitest.Tree
	ca  *pkitest.CA
	c   cache.SnapshotCache
	pub *Publisher
}

func newPubEnv(t *testing.T) *pubEnv {
	t.Helper()
	e := &pubEnv{t: t, tr: pkitest.NewTree(t), ca: pkitest.NewCA(t, "pub root")}
	e.tr.Server("a", e.ca.Server("a.example"))
	e.tr.Server("b", e.ca.Server("b.example"))
	e.tr.Trust("clients", "ca.pem", e.ca.CertPEM())
	e.tr.Trust("clients", "ca.crl", e.ca.CRLPEM())
	e.tr.WriteConfig("a.yaml", twoListeners)
	e.tr.WriteConfig("b.yaml", listenerB)
	e.c = cache.NewSnapshotCache(true, nodeHash{}, nil)
	e.pub = NewPublisher(e.c, "")
	return e
}

func (e *pubEnv) update() (Result, error) {
	e.t.Helper()
	m, err := config.Load(e.tr.Certs, e.tr.Config)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.pub.Update(context.Background(), m)
}

func (e *pubEnv) mustUpdate() Result {
	e.t.Helper()
	res, err := e.update()
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *pubEnv) served(typeURL string) map[string]types.Resource {
	e.t.Helper()
	s, err := e.c.GetSnapshot(allNodes)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.GetResources(typeURL)
}

func (e *pubEnv) names(typeURL string) []string { return sortedKeys(e.served(typeURL)) }

func TestPublisherFirstUpdate(t *testing.T) {
	e := newPubEnv(t)
	res := e.mustUpdate()
	if !res.Pushed || !slices.Equal(res.Serving, []string{"a", "b"}) || len(res.LastGood) != 0 {
		t.Fatalf("result %+v", res)
	}
	if len(res.Changed) != len(servedTypes) {
		t.Errorf("first push changed %d types, want all %d", len(res.Changed), len(servedTypes))
	}
	// Types certplane does not emit are published empty, never absent.
	s, _ := e.c.GetSnapshot(allNodes)
	for _, typeURL := range servedTypes {
		if s.GetVersion(typeURL) == "" {
			t.Errorf("%s has no version: a by-name request for it would hang", typeURL)
		}
	}
	if got := e.names(resource.SecretType); !slices.Equal(got, []string{"server/a", "server/b", "trust/clients"}) {
		t.Errorf("secrets %v", got)
	}
	if !e.pub.Ready() {
		t.Error("not ready after the first push")
	}
}

func TestPublisherUnchangedPushesNothing(t *testing.T) {
	e := newPubEnv(t)
	first := e.mustUpdate()
	again := e.mustUpdate()
	if again.Pushed || len(again.Changed) != 0 {
		t.Fatalf("reload of unchanged files pushed: %+v", again)
	}
	if !mapsEqual(first.Versions, again.Versions) {
		t.Errorf("versions moved without a change: %v -> %v", first.Versions, again.Versions)
	}
}

func TestPublisherCRLChangesSecretsOnly(t *testing.T) {
	e := newPubEnv(t)
	e.mustUpdate()
	e.tr.Trust("clients", "ca.crl", e.ca.CRLPEM())
	res := e.mustUpdate()
	if !res.Pushed || !slices.Equal(res.Changed, []string{resource.SecretType}) {
		t.Fatalf("a new CRL changed %v; want only Secrets", res.Changed)
	}
}

func TestPublisherKeepsLastGoodOfInvalidListener(t *testing.T) {
	e := newPubEnv(t)
	e.mustUpdate()
	before := e.served(resource.SecretType)["server/a"].(*tlsv3.Secret)

	// Listener a's key no longer matches; listener b's backend changes.
	e.tr.Write("certs/server/a/tls.key", e.ca.Server("a.example").KeyPEM(), 0o600)
	e.tr.WriteConfig("b.yaml", listenerB+`    health_check: {path: /healthz, interval: 5s, timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 2}
`)
	res := e.mustUpdate()
	if !slices.Equal(res.LastGood, []string{"a"}) || !slices.Equal(res.Serving, []string{"b"}) {
		t.Fatalf("last good %v, serving %v; want a kept, b fresh", res.LastGood, res.Serving)
	}
	if !slices.Equal(res.Changed, []string{resource.ClusterType}) {
		t.Errorf("changed %v; want only Clusters (b's health check)", res.Changed)
	}
	if got := e.served(resource.SecretType)["server/a"]; got != before {
		t.Error("listener a's Secret was replaced although its key is invalid")
	}
	if got := e.names(resource.ListenerType); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("listeners %v; want a (last good) and b", got)
	}
	st := e.pub.Served().Status()
	if st.Listeners[0].Name != "a" || st.Listeners[0].State != status.StateLastGood || st.Listeners[1].State != status.StateServing {
		t.Errorf("status listeners %+v", st.Listeners)
	}
	if len(st.Errors) != 1 || st.Errors[0].Listener != "a" || !st.Errors[0].LastGoodServed {
		t.Errorf("status errors %+v", st.Errors)
	}
}

func TestPublisherNeverValidListenerNotCreated(t *testing.T) {
	e := newPubEnv(t)
	e.mustUpdate()
	e.tr.WriteConfig("c.yaml", `listeners:
  - name: c
    address: 127.0.0.1:7443
    certificates: [missing]
    routes: [{path_prefix: /, backend: demo}]
`)
	res := e.mustUpdate()
	if res.Pushed {
		t.Errorf("an invalid new listener pushed: changed %v", res.Changed)
	}
	if got := e.names(resource.ListenerType); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("listeners %v; c was never valid and must not exist", got)
	}
	st := e.pub.Served().Status()
	if len(st.Errors) == 0 || st.Errors[0].Listener != "c" || st.Errors[0].LastGoodServed {
		t.Errorf("status errors %+v; want c, not served", st.Errors)
	}
}

func TestPublisherRemovesDeletedListener(t *testing.T) {
	e := newPubEnv(t)
	e.mustUpdate()
	e.tr.Remove("config/b.yaml")
	e.mustUpdate()
	if got := e.names(resource.ListenerType); !slices.Equal(got, []string{"a"}) {
		t.Errorf("listeners %v after deleting b.yaml", got)
	}
	if got := e.names(resource.SecretType); !slices.Equal(got, []string{"server/a", "trust/clients"}) {
		t.Errorf("secrets %v: b's must go with it", got)
	}
	if got := e.names(resource.ClusterType); !slices.Equal(got, []string{"demo"}) {
		t.Errorf("clusters %v", got)
	}
}

func TestPublisherBrokenConfigFileKeepsItsListeners(t *testing.T) {
	e := newPubEnv(t)
	e.mustUpdate()
	file := e.tr.WriteConfig("b.yaml", "listeners:\n  - name: b\n    bogus_key: 1\n")
	e.tr.Trust("clients", "ca.crl", e.ca.CRLPEM()) // a changes meanwhile
	res := e.mustUpdate()
	if !slices.Equal(res.LastGood, []string{"b"}) || !slices.Equal(res.Serving, []string{"a"}) {
		t.Fatalf("last good %v, serving %v; want b kept while its file is broken", res.LastGood, res.Serving)
	}
	if !slices.Equal(res.Changed, []string{resource.SecretType}) {
		t.Errorf("changed %v; want Secrets (a's CRL)", res.Changed)
	}
	st := e.pub.Served().Status()
	var found bool
	for _, p := range st.Errors {
		if p.File == file && p.Listener == "" && p.LastGoodServed {
			found = true
		}
	}
	if !found {
		t.Errorf("no file-wide error for %s with last_good_served: %+v", file, st.Errors)
	}
	// Fixing the file by removing b for good removes it.
	e.tr.WriteConfig("b.yaml", "listeners: []\n")
	e.mustUpdate()
	if got := e.names(resource.ListenerType); !slices.Equal(got, []string{"a"}) {
		t.Errorf("listeners %v after b was removed from its fixed file", got)
	}
}

func TestPublisherFreshListenerTakesAddressOfKeptOne(t *testing.T) {
	e := newPubEnv(t)
	e.mustUpdate()
	// a breaks; b moves to a's address. The loader reports the port clash
	// among all listeners that parsed, broken or not, so b's move is itself a
	// problem: both keep their last good versions, and nothing is withdrawn.
	e.tr.Write("certs/server/a/tls.key", e.ca.Server("a.example").KeyPEM(), 0o600)
	e.tr.WriteConfig("b.yaml", listenerB[:0]+`listeners:
  - name: b
    address: 127.0.0.1:8443
    certificates: [b]
    routes: [{path_prefix: /, backend: demo-b}]
backends:
  - name: demo-b
    endpoints: ["127.0.0.1:9090"]
`)
	res := e.mustUpdate()
	if !slices.Equal(res.LastGood, []string{"a", "b"}) {
		t.Errorf("last good %v; want a (broken key) and b (port clash) kept", res.LastGood)
	}
	if len(res.Errors) != 0 {
		t.Errorf("errors %v; nothing should be withdrawn", res.Errors)
	}
	var clash bool
	for _, p := range e.pub.Served().Status().Errors {
		if p.Listener == "b" && strings.Contains(p.Reason, "127.0.0.1:8443") {
			clash = true
		}
	}
	if !clash {
		t.Errorf("no problem names b's clash on 127.0.0.1:8443: %+v", e.pub.Served().Status().Errors)
	}
	if got := e.names(resource.ListenerType); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("listeners %v", got)
	}
}

func TestValidateSetSecretReferences(t *testing.T) {
	e := newPubEnv(t)
	m, err := config.Load(e.tr.Certs, e.tr.Config)
	if err != nil {
		t.Fatal(err)
	}
	set, err := envoy.Unit(m, m.Listeners[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := validateSet(set, nil); err != nil {
		t.Fatalf("valid unit: %v", err)
	}
	extra := &tlsv3.Secret{Name: "server/stray"}
	set[resource.SecretType]["server/stray"] = extra
	if err := validateSet(set, nil); err == nil || err.Error() != "unreferenced secrets present: server/stray" {
		t.Errorf("stray secret: %v", err)
	}
	delete(set[resource.SecretType], "server/stray")
	delete(set[resource.SecretType], "trust/clients")
	if err := validateSet(set, nil); err == nil || err.Error() != "referenced secrets missing: trust/clients" {
		t.Errorf("missing secret: %v", err)
	}
	set[resource.SecretType]["trust/clients"] = &tlsv3.Secret{Name: "wrong"}
	if err := validateSet(set, nil); err == nil || err.Error() != `secrets "trust/clients": resource is named "wrong"`+"\nreferenced secrets missing: trust/clients" && err.Error() != `secrets "trust/clients": resource is named "wrong"` {
		t.Errorf("misfiled secret: %v", err)
	}
	// A resource that breaks Envoy's constraints is caught by ValidateAll.
	set[resource.SecretType]["trust/clients"] = &tlsv3.Secret{Name: "trust/clients", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{}},
	}}}
	if err := validateSet(set, nil); err == nil {
		t.Error("a Secret violating its proto constraints passed validation")
	}
	// The publisher refuses to publish such a set as a whole.
	if _, err := build(set); err == nil {
		t.Error("build accepted an invalid set")
	}
}

func TestNodeIDServesOnlyThatNode(t *testing.T) {
	e := newPubEnv(t)
	e.c = cache.NewSnapshotCache(true, nodeHash{only: "edge-1"}, nil)
	e.pub = NewPublisher(e.c, "edge-1")
	e.mustUpdate()
	if _, err := e.c.GetSnapshot("edge-1"); err != nil {
		t.Fatalf("no snapshot for edge-1: %v", err)
	}
	if _, err := e.c.GetSnapshot(allNodes); err == nil {
		t.Error("a shared snapshot exists although --node-id is set")
	}
	tk := newTracker("edge-1", discardLogger(), nil)
	if err := tk.admit(nodeOf("edge-2"), nil); err == nil || err.Error() != `rpc error: code = PermissionDenied desc = node "edge-2" is not served: this control plane serves only node "edge-1" (--node-id)` {
		t.Errorf("admit edge-2: %v", err)
	}
	if err := tk.admit(nodeOf("edge-1"), nil); err != nil {
		t.Errorf("admit edge-1: %v", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func nodeOf(id string) *core.Node { return &core.Node{Id: id} }

// TestServedIsOneImmutableValuePerUpdate: each Update stores a new Served;
// one read before a later Update still says exactly what it said (a view
// computed from it is never torn between two publishes), and it carries the
// snapshot it describes.
func TestServedIsOneImmutableValuePerUpdate(t *testing.T) {
	e := newPubEnv(t)
	if s := e.pub.Served(); s == nil || s.Ready() || s.Snapshot != nil {
		t.Fatalf("Served before any Update = %+v; want an empty, not ready value", s)
	}
	e.mustUpdate()
	first := e.pub.Served()
	before, err := json.Marshal(first.Status())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := e.c.GetSnapshot(allNodes)
	if err != nil || first.Snapshot != snap {
		t.Errorf("Served.Snapshot is not the snapshot served (%v)", err)
	}

	e.tr.Write("certs/server/a/tls.key", e.ca.Server("other.example").KeyPEM(), 0o600)
	e.mustUpdate()
	second := e.pub.Served()
	if second == first || second.Reloads != first.Reloads+1 || len(second.Errors) == 0 {
		t.Fatalf("second Update's Served: %+v", second)
	}
	after, err := json.Marshal(first.Status())
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("the first Served changed after a later Update:\nbefore %s\nafter  %s", before, after)
	}
}
