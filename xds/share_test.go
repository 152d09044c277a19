package xds

import (
	"context"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// TestPublishedTrustSecretAliasesModel: the served trust Secret is the
// model's PEM itself (no per-listener or per-snapshot copy), and every
// listener's unit holds that one Secret.
func TestPublishedTrustSecretAliasesModel(t *testing.T) {
	m := benchModel(t, 3, 10)
	p := NewPublisher(cache.NewSnapshotCache(true, nodeHash{}, nil), "")
	if _, err := p.Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	served := p.cur.snap.Resources[types.Secret].Items["trust/partners"].Resource.(*tlsv3.Secret)
	crl := served.GetValidationContext().GetCrl().GetInlineBytes()
	if want := m.Trust["partners"].CRLPEM; &crl[0] != &want[0] || len(crl) != len(want) {
		t.Error("the served trust Secret copies the model's CRL")
	}
	for name, u := range p.lastGood {
		if u.set[resource.SecretType]["trust/partners"] != served {
			t.Errorf("listener %s holds its own trust Secret", name)
		}
	}
}
