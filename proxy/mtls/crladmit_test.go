package mtls

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/certplane/certplane/pki"
)

// TestCRLCriticalExtensionsAgreeWithConfig: issue #12. config refused a
// CRL for these only after crl.Admit became its rule; the proxy applies
// the same rule (crl.Summary.Usable), so the CA's clients fail closed with
// crl_missing ("unusable") here too, and a CRL whose extensions are fine
// still admits them.
func TestCRLCriticalExtensionsAgreeWithConfig(t *testing.T) {
	p := newAttackPKI(t)
	rootCRL, _ := p.crls(t, false, false)
	now := time.Now().Add(-time.Minute)
	interCRL := func(ext []pkix.Extension) []byte {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(7), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour), ExtraExtensions: ext,
		}, p.inter.Cert, p.inter.Key)
		if err != nil {
			t.Fatal(err)
		}
		return pki.CRLPEM(der)
	}
	for _, tc := range []struct {
		name string
		ext  []pkix.Extension
		want string // "" accepts
	}{
		{"no extension", nil, ""},
		{"non-critical freshest CRL", []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 46}, Value: []byte{0x30, 0x00}}}, ""},
		{"critical freshest CRL", []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 46}, Critical: true, Value: []byte{0x30, 0x00}}}, "freshest CRL"},
		{"critical AIA", []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}, Critical: true, Value: []byte{0x30, 0x00}}}, "authority information access"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vc := &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM), Crl: inline(append(append([]byte{}, rootCRL...), interCRL(tc.ext)...))}
			v := ok(NewVerifier(vc, true, Options{}))
			f, _ := handshake(t, v, serverCert(t), clientOf(p.alice), tls.VersionTLS13)
			switch {
			case tc.want == "" && f != nil:
				t.Fatalf("refused: %v", f)
			case tc.want != "" && (f == nil || f.Reason != ReasonCRLMissing || !strings.Contains(f.Error(), tc.want)):
				t.Fatalf("verdict %v, want crl_missing naming %q", f, tc.want)
			}
		})
	}
}
