package xds

import (
	"context"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki/pkitest"
)

// TestIncrementalEqualsFullTranslation drives one long-lived publisher
// through a sequence of changes and checks after each that it serves
// exactly what a new publisher translating everything serves: reusing the
// units of unchanged listeners must never serve stale resources.
func TestIncrementalEqualsFullTranslation(t *testing.T) {
	e := newPubEnv(t)
	e.mustUpdate()
	steps := []struct {
		name   string
		change func()
	}{
		{"unchanged", func() {}},
		{"new CRL", func() { e.tr.Trust("clients", "ca.crl", e.ca.CRLPEM()) }},
		{"rotate a's certificate", func() { e.tr.Server("a", e.ca.Server("a.example")) }},
		{"edit b's route", func() { e.tr.WriteConfig("b.yaml", listenerB+"  # edited\n") }},
		{"edit b's backend", func() {
			e.tr.WriteConfig("b.yaml", `listeners:
  - name: b
    address: 127.0.0.1:9443
    certificates: [b]
    routes: [{path_prefix: /v2, backend: demo-b}]
backends:
  - name: demo-b
    endpoints: ["127.0.0.1:9091"]
`)
		}},
		{"a's CA bundle grows", func() {
			e.tr.Trust("clients", "ca.pem", append(e.ca.CertPEM(), e.ca.Impostor().CertPEM()...))
		}},
		{"a's certificate gets other DNS names", func() { e.tr.Server("a", e.ca.Server("a2.example", pkitest.DNS("a2.example", "www.a2.example"))) }},
		{"b presents two certificates", func() {
			e.tr.WriteConfig("b.yaml", `listeners:
  - name: b
    address: 127.0.0.1:9443
    certificates: [b, a]
    routes: [{path_prefix: /v2, backend: demo-b}]
backends:
  - name: demo-b
    endpoints: ["127.0.0.1:9091"]
`)
		}},
		{"b's second certificate is renamed", func() { e.tr.Server("a", e.ca.Server("a3.example")) }},
		{"b verifies clients", func() {
			e.tr.WriteConfig("b.yaml", `listeners:
  - name: b
    address: 127.0.0.1:9443
    certificates: [b]
    client_auth: {mode: verify, trust_store: clients}
    routes: [{path_prefix: /v2, backend: demo-b}]
backends:
  - name: demo-b
    endpoints: ["127.0.0.1:9091"]
`)
		}},
	}
	for _, s := range steps {
		s.change()
		m, err := config.Load(e.tr.Certs, e.tr.Config)
		if err != nil {
			t.Fatal(err)
		}
		inc, err := e.pub.Update(context.Background(), m)
		if err != nil {
			t.Fatalf("%s: incremental: %v", s.name, err)
		}
		full := NewPublisher(cache.NewSnapshotCache(true, nodeHash{}, nil), "")
		full.instance = e.pub.instance // the same loop token, so equal content is equal versions
		want, err := full.Update(context.Background(), m)
		if err != nil {
			t.Fatalf("%s: full: %v", s.name, err)
		}
		if !mapsEqual(inc.Versions, want.Versions) {
			t.Errorf("%s: incremental publisher serves %v; a full translation serves %v", s.name, inc.Versions, want.Versions)
		}
	}
}

// TestUnchangedListenerIsNotTranslatedAgain checks the reuse itself: a
// reload that changes only listener b serves a's very unit, and b's new
// unit shares the trust Secret a already serves rather than a rebuilt copy
// (a trust Secret can hold tens of MB of CRLs).
func TestUnchangedListenerIsNotTranslatedAgain(t *testing.T) {
	e := newPubEnv(t)
	e.tr.WriteConfig("b.yaml", `listeners:
  - name: b
    address: 127.0.0.1:9443
    certificates: [b]
    client_auth: {mode: verify, trust_store: clients}
    routes: [{path_prefix: /, backend: demo-b}]
backends:
  - name: demo-b
    endpoints: ["127.0.0.1:9090"]
`)
	e.mustUpdate()
	a0, b0 := e.pub.lastGood["a"], e.pub.lastGood["b"]
	trust := a0.set[resource.SecretType]["trust/clients"]
	if trust == nil {
		t.Fatal("listener a serves no trust/clients Secret")
	}
	e.tr.WriteConfig("b.yaml", `listeners:
  - name: b
    address: 127.0.0.1:9443
    certificates: [b]
    client_auth: {mode: verify, trust_store: clients}
    routes: [{path_prefix: /edited, backend: demo-b}]
backends:
  - name: demo-b
    endpoints: ["127.0.0.1:9090"]
`)
	res := e.mustUpdate()
	if !res.Pushed {
		t.Fatal("an edit of b pushed nothing")
	}
	if e.pub.lastGood["a"] != a0 {
		t.Error("listener a, whose inputs did not change, was translated again")
	}
	b1 := e.pub.lastGood["b"]
	if b1 == b0 {
		t.Fatal("listener b, whose route changed, was not translated again")
	}
	if b1.set[resource.SecretType]["trust/clients"] != trust {
		t.Error("b's new unit rebuilt the trust Secret that a serves unchanged")
	}
	// The hash cache holds what is served, not every version ever built.
	for r := range e.pub.sums.sums {
		found := false
		for _, u := range e.pub.lastGood {
			for _, items := range u.set {
				for _, x := range items {
					found = found || x == r
				}
			}
		}
		if !found {
			t.Errorf("hash cache keeps %T no unit serves", r)
		}
	}
}
