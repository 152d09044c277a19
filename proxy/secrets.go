package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/certplane/certplane/pemder"
	"github.com/certplane/certplane/proxy/mtls"
	"github.com/certplane/certplane/xds/client"
)

// secret is one parsed SDS Secret: a key pair or a validation context.
type secret struct {
	name string
	// keyPair is set for tls_certificate secrets; keyPair.Leaf is parsed.
	keyPair *tls.Certificate
	// vc is set for validation_context secrets, with its parsed contents.
	vc    *tlsv3.CertificateValidationContext
	roots []*x509.Certificate
	// crls is vc's crl, parsed once for status, upstream checks and the
	// listeners' verifiers (mtls.Options.CRLs): the full parsed
	// x509.RevocationList is not kept (about 300 bytes per serial).
	crls *mtls.CRLSet
	// digest is the parsed Secret's client.SecretDigest: vc no longer
	// holds the crl (see parseSecret), so an unchanged Secret is told by
	// its digest.
	digest client.Digest
}

// parseSecret parses and checks a Secret as Envoy would before accepting it.
func parseSecret(s *tlsv3.Secret) (*secret, error) {
	out := &secret{name: s.GetName()}
	switch {
	case s.GetTlsCertificate() != nil:
		tc := s.GetTlsCertificate()
		chain, key := inlineData(tc.GetCertificateChain()), inlineData(tc.GetPrivateKey())
		if len(chain) == 0 {
			return nil, errors.New("tls_certificate.certificate_chain.inline_bytes is empty")
		}
		if len(key) == 0 {
			return nil, errors.New("tls_certificate.private_key.inline_bytes is empty")
		}
		kp, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, fmt.Errorf("tls_certificate: %w", err)
		}
		if kp.Leaf == nil {
			if kp.Leaf, err = x509.ParseCertificate(kp.Certificate[0]); err != nil {
				return nil, fmt.Errorf("tls_certificate.certificate_chain: %w", err)
			}
		}
		out.keyPair = &kp
	case s.GetValidationContext() != nil:
		vc := s.GetValidationContext()
		roots, err := parseCerts(inlineData(vc.GetTrustedCa()))
		if err != nil {
			return nil, fmt.Errorf("validation_context.trusted_ca: %w", err)
		}
		crlPEM := inlineData(vc.GetCrl())
		if len(crlPEM) > largeSecretBytes {
			// The response's encoded frames are garbage once decoded
			// (xds/client drops them): collect them before the parse
			// allocates the DER and the index beside the decoded Secret,
			// rather than at a heap goal of twice frames + Secret. The
			// marking is cheap: the big buffers are pointer-free.
			runtime.GC()
		}
		crls, err := mtls.ParseCRLs(crlPEM)
		if err != nil {
			return nil, fmt.Errorf("validation_context.crl: %w", err)
		}
		// The CRL lives on only as its index (crls): keeping vc's crl
		// would hold the Secret's PEM, 46 MB for 1,000,000 serials.
		out.vc, out.roots, out.crls = client.ReleaseSecret(s).GetValidationContext(), roots, crls
	default:
		return nil, errors.New("neither tls_certificate nor validation_context is set")
	}
	return out, nil
}

// inlineData is a DataSource's inline_bytes or inline_string (the
// allow-list refuses every other specifier).
func inlineData(ds *corev3.DataSource) []byte {
	if s, ok := ds.GetSpecifier().(*corev3.DataSource_InlineString); ok {
		return []byte(s.InlineString)
	}
	return ds.GetInlineBytes()
}

// parseCerts parses PEM certificates, skipping CRL blocks: Envoy's trusted_ca
// may carry CRLs beside the CAs.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	err := pemder.Lenient(data, func(_ int, b pemder.Block) error {
		if b.Type != pemder.TypeCertificate {
			return nil
		}
		c, err := x509.ParseCertificate(b.DER)
		if err != nil {
			return fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(data) > 0 && len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return out, nil
}

// expiry reports the certificate's NotAfter, or the earliest CRL NextUpdate.
func (s *secret) expiry() (certNotAfter time.Time, crlNextUpdate time.Time) {
	if s.keyPair != nil {
		certNotAfter = s.keyPair.Leaf.NotAfter
	}
	for _, c := range s.crls.Info() {
		if crlNextUpdate.IsZero() || c.NextUpdate.Before(crlNextUpdate) {
			crlNextUpdate = c.NextUpdate
		}
	}
	return certNotAfter, crlNextUpdate
}
