package envoy

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/certplane/certplane/config"
)

// ServerSecret is the key pair a listener presents: server/<name>.
func ServerSecret(kp *config.KeyPair) (*tlsv3.Secret, error) {
	return keyPairSecret(ServerSecretName(kp.Name), kp)
}

// ClientSecret is the key pair Envoy presents to backends: client/<name>.
func ClientSecret(kp *config.KeyPair) (*tlsv3.Secret, error) {
	return keyPairSecret(ClientSecretName(kp.Name), kp)
}

func keyPairSecret(name string, kp *config.KeyPair) (*tlsv3.Secret, error) {
	if len(kp.ChainPEM) == 0 || len(kp.KeyPEM) == 0 {
		return nil, fmt.Errorf("secret %s: empty certificate chain or key", name)
	}
	return &tlsv3.Secret{
		Name: name,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(kp.ChainPEM),
			PrivateKey:       inline(kp.KeyPEM),
		}},
	}, nil
}

// ValidationContextSecret is trust/<store>: the store's CA certificates and,
// when it has any, its CRLs. It carries nothing else: per-listener rules
// (SAN matchers, pins, CRL scope) stay in each listener's
// default_validation_context, so one store serves listeners with different
// rules, and a CRL update touches only this Secret.
func ValidationContextSecret(ts *config.TrustStore) (*tlsv3.Secret, error) {
	name := TrustSecretName(ts.Name)
	if len(ts.CAPEM) == 0 {
		return nil, fmt.Errorf("secret %s: trust store has no CA certificate", name)
	}
	vc := &tlsv3.CertificateValidationContext{TrustedCa: inline(ts.CAPEM)}
	if ts.CRLPEM.Len() > 0 {
		// A large bundle of several CRLs is its rope's token here: xds
		// sends the CRLs in its place, and rope.Materialize gives the
		// Secret with the bytes to anything else.
		vc.Crl = inline(ts.CRLPEM.Inline())
	}
	return &tlsv3.Secret{
		Name: name,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: vc},
	}, nil
}

// inline aliases b rather than copying it: a trust bundle with its CRLs can
// be tens of MB, and the model's bytes are immutable (models are never
// edited, a reload builds a new one), as are the Secrets built from them
// once published. Marshalling only reads the slice.
func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}
