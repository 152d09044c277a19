package xds

import (
	"context"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/envoy/envoytest"
	"github.com/certplane/certplane/status"
)

// TestPublishedTrustSecretAliasesModel: the served trust Secret is the
// model's PEM itself (no per-listener or per-snapshot copy), and every
// listener's unit holds that one Secret.
func TestPublishedTrustSecretAliasesModel(t *testing.T) {
	m := envoytest.ScaledModel(t, 3, 10)
	p := NewPublisher(cache.NewSnapshotCache(true, nodeHash{}, nil), "")
	if _, err := p.Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	served := p.cur.snap.Resources[types.Secret].Items["trust/partners"].Resource.(*tlsv3.Secret)
	crl := served.GetValidationContext().GetCrl().GetInlineBytes()
	if want := m.Trust["partners"].CRLPEM.Bytes(); &crl[0] != &want[0] || len(crl) != len(want) {
		t.Error("the served trust Secret copies the model's CRL")
	}
	for name, u := range p.lastGood {
		if u.set[resource.SecretType]["trust/partners"] != served {
			t.Errorf("listener %s holds its own trust Secret", name)
		}
	}
}

// TestUnitsShareTrustInfo: the listeners of one update that verify against
// one store share its status and expiry items (with 1,000 listeners on a
// store of 10,000 CAs, a copy each was gigabytes), and the expiry lists
// still name each CA once.
func TestUnitsShareTrustInfo(t *testing.T) {
	m := envoytest.ScaledModel(t, 3, 10)
	p := NewPublisher(cache.NewSnapshotCache(true, nodeHash{}, nil), "")
	if _, err := p.Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	var first *unit
	for name, u := range p.lastGood {
		ts := u.info.trust["partners"]
		if ts == nil {
			t.Fatalf("listener %s: no trust info", name)
		}
		if first == nil {
			first = u
			continue
		}
		if ts != first.info.trust["partners"] {
			t.Errorf("listener %s holds its own copy of the trust store's info", name)
		}
	}
	cas := 0
	for _, e := range status.Expiries(p.Served().Inventory()) {
		if e.Kind == status.KindCA && e.Name == "trust/partners" {
			cas++
		}
	}
	if want := len(m.Trust["partners"].CAs); cas != want {
		t.Errorf("expiries list %d CAs of trust/partners, want %d", cas, want)
	}
}
