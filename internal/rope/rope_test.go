package rope

import (
	"bytes"
	"errors"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

func big(b byte) []byte { return bytes.Repeat([]byte{b}, MinBytes) }

// TestInline: one chunk is inlined as it is, a small bundle joined, a
// large bundle of several chunks as a token that finds the rope again.
func TestInline(t *testing.T) {
	one := Of(big('a'))
	if got := one.Inline(); &got[0] != &one.Chunks()[0][0] || IsToken(got) {
		t.Error("a rope of one chunk is not inlined as that chunk")
	}
	small := Of([]byte("a"), []byte("b"))
	if got := small.Inline(); string(got) != "ab" {
		t.Errorf("a small rope inlines %q", got)
	}
	r := Of(big('a'), []byte("b"))
	tok := r.Inline()
	if !IsToken(tok) || r.Len() != MinBytes+1 {
		t.Fatalf("a large rope of two chunks inlines %d bytes", len(tok))
	}
	got, err := Lookup(tok)
	if err != nil || got != r {
		t.Fatalf("Lookup: %v %v", got, err)
	}
	if Of(big('a'), []byte("b")) != r {
		t.Error("an equal rope is not the live one")
	}
	if Of(big('a'), []byte("c")).Digest() == r.Digest() || Of(big('a')[1:], []byte("ab")).Digest() == r.Digest() {
		t.Error("different ropes share a digest")
	}
	if Of() != nil || Of(nil, []byte{}) != nil {
		t.Error("an empty rope is not nil")
	}
	if r, err := Lookup(big('a')[:TokenLen]); r != nil || err != nil {
		t.Error("plain bytes are taken for a token")
	}
}

// TestMaterialize: tokens anywhere a Secret or a bootstrap holds them are
// replaced by the bytes in a copy; a lost token is an error.
func TestMaterialize(t *testing.T) {
	r := Of(big('a'), []byte("b"))
	sec := &tlsv3.Secret{Name: "trust/x", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: []byte("ca")}},
		Crl:       &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: r.Inline()}},
	}}}
	boot := &bootstrapv3.Bootstrap{StaticResources: &bootstrapv3.Bootstrap_StaticResources{Secrets: []*tlsv3.Secret{sec}}}
	if !Has(sec) || !Has(boot) {
		t.Fatal("Has misses the token")
	}
	full, err := Materialize(boot)
	if err != nil {
		t.Fatal(err)
	}
	if got := full.GetStaticResources().GetSecrets()[0].GetValidationContext().GetCrl().GetInlineBytes(); !bytes.Equal(got, append(big('a'), 'b')) {
		t.Errorf("materialized CRL: %d bytes", len(got))
	}
	if !IsToken(sec.GetValidationContext().GetCrl().GetInlineBytes()) {
		t.Error("Materialize modified its input")
	}
	plain := &tlsv3.Secret{Name: "p"}
	if m, err := Materialize(plain); err != nil || m != plain {
		t.Error("a message without tokens is not returned as it is")
	}
	tok := append([]byte{}, r.Inline()...)
	tok[TokenLen-1] ^= 1
	sec.GetValidationContext().Crl = &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: tok}}
	if _, err := Materialize(sec); !errors.Is(err, ErrLost) {
		t.Errorf("a lost token: %v, want ErrLost", err)
	}
}
