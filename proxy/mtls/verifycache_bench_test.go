package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/certplane/certplane/pki/pkitest"
)

func inlineDS(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

// BenchmarkVerify is the verifier's share of one mTLS handshake: a client
// chain leaf → intermediate → root, with full-chain CRL checks. The same
// client reconnecting is the common case (a fleet of services), so the chain
// repeats.
func BenchmarkVerify(b *testing.B) {
	root := pkitest.NewCA(b, "Bench Root")
	inter := root.Intermediate("Bench Issuing")
	leaf := inter.Client("bench-client")
	crls := append(root.CRLPEM(), inter.CRLPEM()...)
	v, err := NewVerifier(&tlsv3.CertificateValidationContext{
		TrustedCa: inlineDS(root.CertPEM()), Crl: inlineDS(crls),
	}, true, Options{})
	if err != nil {
		b.Fatal(err)
	}
	cs := tls.ConnectionState{PeerCertificates: append([]*x509.Certificate{leaf.Cert}, leaf.Chain...)}
	if f := v.Verify(cs); f != nil {
		b.Fatal(f)
	}
	b.ReportAllocs()
	for b.Loop() {
		if f := v.Verify(cs); f != nil {
			b.Fatal(f)
		}
	}
}
