package client

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

func crlSecret(name string, caPEM, crlPEM []byte) *tlsv3.Secret {
	s := trustSecret(name, caPEM)
	s.GetValidationContext().Crl = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: crlPEM}}
	return s
}

// TestSecretDigest: a Secret's digest is the same for the same content in
// another message (a re-delivery), and differs when the CRL, the CA or the
// way the CRL is carried differ.
func TestSecretDigest(t *testing.T) {
	s := crlSecret("trust/x", []byte("ca"), []byte("crl"))
	if SecretDigest(s) != SecretDigest(proto.Clone(s).(*tlsv3.Secret)) {
		t.Error("the same Secret in another message has another digest")
	}
	str := trustSecret("trust/x", []byte("ca"))
	str.GetValidationContext().Crl = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "crl"}}
	for what, other := range map[string]*tlsv3.Secret{
		"another CRL":                 crlSecret("trust/x", []byte("ca"), []byte("crl2")),
		"another CA":                  crlSecret("trust/x", []byte("ca2"), []byte("crl")),
		"no CRL":                      trustSecret("trust/x", []byte("ca")),
		"the CRL as inline_string":    str,
		"the CRL released (no bytes)": ReleaseSecret(s),
	} {
		if SecretDigest(other) == SecretDigest(s) {
			t.Errorf("%s: same digest", what)
		}
	}
}

// TestReleaseSecretsKeepsDigests: the client's state after a release holds
// each Secret without its CRL and with its digest, while a view handed out
// before keeps the CRL; a SotW response re-delivering the same Secret
// carries the same digest, and an SDS response naming only another Secret
// keeps the released one's digest.
func TestReleaseSecretsKeepsDigests(t *testing.T) {
	const name = "trust/x"
	s := crlSecret(name, []byte("ca"), []byte("crl"))
	u, err := next(emptyResources(), subscriptions{}, kSecret, "s1", []named{{name, s}})
	if err != nil {
		t.Fatal(err)
	}
	if u.res.SecretDigests[name] != SecretDigest(s) || u.res.ReleasedSecrets[name] {
		t.Fatalf("view: digest %x, released %v", u.res.SecretDigests[name], u.res.ReleasedSecrets[name])
	}
	kept := releaseSecrets(u.res)
	if kept.Secrets[name].GetValidationContext().GetCrl() != nil || !kept.ReleasedSecrets[name] {
		t.Errorf("released state still holds the CRL")
	}
	if string(kept.Secrets[name].GetValidationContext().GetTrustedCa().GetInlineBytes()) != "ca" {
		t.Errorf("released Secret lost its trusted_ca")
	}
	if u.res.Secrets[name].GetValidationContext().GetCrl() == nil || u.res.ReleasedSecrets[name] || s.GetValidationContext().GetCrl() == nil {
		t.Errorf("releasing changed a view handed out before")
	}
	if kept.SecretDigests[name] != SecretDigest(s) {
		t.Errorf("released state lost the digest")
	}

	again := proto.Clone(s).(*tlsv3.Secret)
	u2, _ := next(kept, subscriptions{}, kSecret, "s1", []named{{name, again}})
	if u2.res.SecretDigests[name] != kept.SecretDigests[name] || u2.res.ReleasedSecrets[name] {
		t.Errorf("re-delivery: digest changed %v, still marked released %v", u2.res.SecretDigests[name] != kept.SecretDigests[name], u2.res.ReleasedSecrets[name])
	}
	if !kept.ReleasedSecrets[name] {
		t.Errorf("next mutated the released state")
	}

	other := crlSecret("trust/y", []byte("ca"), []byte("crl-y"))
	u3, _ := next(kept, subscriptions{}, kSecret, "s2", []named{{"trust/y", other}})
	if u3.res.SecretDigests[name] != SecretDigest(s) || !u3.res.ReleasedSecrets[name] || u3.res.Secrets[name] != kept.Secrets[name] {
		t.Errorf("an SDS response without %s changed its entry", name)
	}
}
