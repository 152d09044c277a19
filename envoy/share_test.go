package envoy

import (
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/envoy/envoytest"
)

// TestTranslateSharesSecrets: every unit of one Translate holds the same
// trust Secret, whose inline bytes are the model's own (no copy per
// listener), while separate Unit calls still build equal resources.
func TestTranslateSharesSecrets(t *testing.T) {
	m := envoytest.ScaledModel(t, 3, 10)
	units, err := Translate(m)
	if err != nil {
		t.Fatal(err)
	}
	var first *tlsv3.Secret
	for name, s := range units {
		sec := s[resource.SecretType]["trust/partners"].(*tlsv3.Secret)
		if first == nil {
			first = sec
		} else if sec != first {
			t.Errorf("%s: trust/partners is a different *Secret", name)
		}
		if s[resource.SecretType]["server/api"] != units["api-0000"][resource.SecretType]["server/api"] {
			t.Errorf("%s: server/api is a different *Secret", name)
		}
	}
	vc := first.GetValidationContext()
	ts := m.Trust["partners"]
	if &vc.GetCrl().GetInlineBytes()[0] != &ts.CRLPEM.Bytes()[0] || &vc.GetTrustedCa().GetInlineBytes()[0] != &ts.CAPEM[0] {
		t.Error("trust/partners copies the model's PEM instead of aliasing it")
	}
	if _, err := Merge(units["api-0000"], units["api-0001"]); err != nil {
		t.Errorf("Merge of shared units: %v", err)
	}
	alone, err := Unit(m, m.Listeners[1])
	if err != nil {
		t.Fatal(err)
	}
	if alone[resource.SecretType]["trust/partners"] == first {
		t.Error("a separate Unit call shares a Translate's Secret")
	}
}
