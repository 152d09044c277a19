package proxy

import (
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/xds/client"
)

// TestUpdateReusesValidatedSecrets: the Update after a Validate serves the
// Secret Validate parsed (a 1,000,000-serial CRL is parsed once per update),
// and a Secret that is a different message is parsed anew.
func TestUpdateReusesValidatedSecrets(t *testing.T) {
	p := New(Options{})
	ca := pkitest.NewCA(t, "Reuse CA")
	trust := trustSecret("trust/clients", ca.CertPEM(), ca.CRLPEM())
	if err := p.Validate("", []proto.Message{trust}); err != nil {
		t.Fatalf("valid trust Secret refused: %v", err)
	}
	parsed := (*p.validated.Load())[trust]
	if parsed == nil {
		t.Fatal("Validate kept no parsed Secret for the Update")
	}
	p.Update(client.Resources{Secrets: map[string]*tlsv3.Secret{"trust/clients": trust}})
	if got := p.state.Load().secrets["trust/clients"]; got != parsed {
		t.Error("Update parsed the Secret again instead of using Validate's")
	}
	if p.validated.Load() != nil {
		t.Error("Update left the validated Secrets behind")
	}
	other := proto.Clone(trust).(*tlsv3.Secret)
	other.GetValidationContext().Crl = nil
	p.Update(client.Resources{Secrets: map[string]*tlsv3.Secret{"trust/clients": other}})
	if got := p.state.Load().secrets["trust/clients"]; got == nil || got == parsed || got.vc.GetCrl() != nil {
		t.Errorf("a Secret never validated was not parsed anew: %+v", got)
	}
}
