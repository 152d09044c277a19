package proxy

import (
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/xds/client"
)

// TestSecretCRLReleasedOnceIndexed: a committed state keeps a trust
// Secret's CRL only as its index (neither the view nor the parsed secret
// holds the PEM); the same Secret delivered again as another message (a
// reconnect's re-delivery) is recognised as unchanged by its digest, also
// from the released view; a changed CRL is indexed anew.
func TestSecretCRLReleasedOnceIndexed(t *testing.T) {
	const name = "trust/clients"
	p := New(Options{})
	ca := pkitest.NewCA(t, "Release CA")
	leaf := ca.Client("alice")
	trust := trustSecret(name, ca.CertPEM(), ca.CRLPEM())
	p.Update(client.Resources{Secrets: map[string]*tlsv3.Secret{name: trust}})

	st := p.state.Load()
	sec := st.secrets[name]
	if sec == nil || sec.crls.Len() != 1 {
		t.Fatalf("trust Secret not applied: %+v (problems %v)", sec, p.Status().Problems)
	}
	if sec.vc.GetCrl() != nil || sec.vc.GetTrustedCa() == nil {
		t.Errorf("parsed secret's validation context: crl %v, trusted_ca %v; want the CA without the CRL", sec.vc.GetCrl() != nil, sec.vc.GetTrustedCa() != nil)
	}
	if got := st.res.Secrets[name]; got.GetValidationContext().GetCrl() != nil || !st.res.ReleasedSecrets[name] {
		t.Errorf("committed view still holds the CRL (released %v)", st.res.ReleasedSecrets[name])
	}
	if trust.GetValidationContext().GetCrl() == nil {
		t.Fatal("the received Secret was mutated: views handed out must stay valid")
	}

	again := proto.Clone(trust).(*tlsv3.Secret)
	if parsed, err := p.check([]proto.Message{again}, p.state.Load(), true); err != nil || parsed[again] != sec {
		t.Errorf("the check of the same Secret delivered again parsed it anew (err %v)", err)
	}
	p.Update(client.Resources{Secrets: map[string]*tlsv3.Secret{name: again}})
	if got := p.state.Load().secrets[name]; got != sec {
		t.Error("the same Secret delivered again was parsed anew")
	}
	p.Update(p.state.Load().res)
	if got := p.state.Load().secrets[name]; got != sec {
		t.Error("the released view rebuilt did not keep the parsed secret")
	}

	ca.Revoke(leaf)
	changed := trustSecret(name, ca.CertPEM(), ca.CRLPEM())
	p.Update(client.Resources{Secrets: map[string]*tlsv3.Secret{name: changed}})
	got := p.state.Load().secrets[name]
	if got == sec || got.crls.Info()[0].Revoked != 1 {
		t.Errorf("a changed CRL was not indexed anew: %+v", got.crls.Info())
	}
}

// TestReleasedSecretNeverParsed: a view naming a Secret as released whose
// digest matches nothing parsed is refused, never parsed as a Secret
// without CRL (which would fail open), and the previous version is kept.
func TestReleasedSecretNeverParsed(t *testing.T) {
	const name = "trust/clients"
	p := New(Options{})
	ca := pkitest.NewCA(t, "Release CA")
	ca.Revoke(ca.Client("mallory"))
	trust := trustSecret(name, ca.CertPEM(), ca.CRLPEM())
	p.Update(client.Resources{Secrets: map[string]*tlsv3.Secret{name: trust}})
	sec := p.state.Load().secrets[name]

	other := pkitest.NewCA(t, "Other CA")
	stranger := trustSecret(name, other.CertPEM(), other.CRLPEM())
	view := client.Resources{
		Secrets:         map[string]*tlsv3.Secret{name: client.ReleaseSecret(stranger)},
		SecretDigests:   map[string]client.Digest{name: client.SecretDigest(stranger)},
		ReleasedSecrets: map[string]bool{name: true},
	}
	p.Update(view)
	if got := p.state.Load().secrets[name]; got != sec {
		t.Errorf("a released Secret never parsed replaced the served one: %+v", got)
	}
	if _, ok := p.Status().Problems["secret/"+name]; !ok {
		t.Errorf("no problem reported for the released Secret: %v", p.Status().Problems)
	}
}
