package mtls

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/pki"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ok unwraps a (value, error) pair in test setup; a setup error panics,
// which fails the test with its message.
func ok[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func clientOf(l *pki.Leaf) *tls.Certificate {
	c := &tls.Certificate{Certificate: [][]byte{l.Cert.Raw}, PrivateKey: l.Key, Leaf: l.Cert}
	for _, x := range l.Chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

// opensslSign has openssl sign a new EC key's certificate with ca: the only
// way to get a SHA-1 signature or an X.509 v1 certificate, which Go refuses
// to make. ext is an openssl extfile body ("" for a v1 certificate).
func opensslSign(t *testing.T, ca *x509.Certificate, caKey crypto.Signer, cn, digest, ext string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed; skipping a case that needs it")
	}
	dir := t.TempDir()
	keyPEM := ok(pki.KeyPEM(caKey))
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caPath, caKeyPath := write("ca.pem", pki.CertPEM(ca)), write("ca.key", keyPEM)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	keyPath, csrPath, certPath := filepath.Join(dir, "l.key"), filepath.Join(dir, "l.csr"), filepath.Join(dir, "l.pem")
	run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyPath, "-out", csrPath, "-subj", "/CN="+cn)
	args := []string{"x509", "-req", "-in", csrPath, "-CA", caPath, "-CAkey", caKeyPath, "-set_serial", "4242", "-days", "30", "-" + digest, "-out", certPath}
	if ext != "" {
		args = append(args, "-extfile", write("ext.cnf", []byte(ext)))
	}
	run(args...)
	cert := ok(x509.ParseCertificate(pemBlock(t, ok(os.ReadFile(certPath)))))
	key := ok(x509.ParsePKCS8PrivateKey(pemBlock(t, ok(os.ReadFile(keyPath)))))
	return cert, key.(crypto.Signer)
}

func pemBlock(t *testing.T, b []byte) []byte {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	return blk.Bytes
}

type attackPKI struct {
	root, inter, revokedInter, other, deepA, deepB                               *pki.CA
	alice, mallory, bob, wrongEKU, expired, notYet, stranger, underRevoked, deep *pki.Leaf
	underNotCA                                                                   *pki.Leaf
	caPEM                                                                        []byte
}

func newAttackPKI(t *testing.T) *attackPKI {
	p := &attackPKI{}
	p.root = ok(pki.NewRootCA(pki.Options{CommonName: "Attack Root CA", Organization: "certplane"}))
	p.inter = ok(p.root.NewIntermediate(pki.Options{CommonName: "Attack Issuing CA"}))
	p.revokedInter = ok(p.root.NewIntermediate(pki.Options{CommonName: "Revoked Issuing CA"}))
	notCA := ok(p.root.NewIntermediate(pki.Options{CommonName: "Not A CA", NotCA: true}))
	p.other = ok(pki.NewRootCA(pki.Options{CommonName: "Other Root CA"}))
	p.deepA = ok(p.root.NewIntermediate(pki.Options{CommonName: "Deep A"}))
	p.deepB = ok(p.deepA.NewIntermediate(pki.Options{CommonName: "Deep B"}))
	now := time.Now()
	p.alice = ok(p.inter.IssueClient(pki.Options{CommonName: "alice", DNSNames: []string{"alice.certplane.test"},
		URIs: []*url.URL{{Scheme: "spiffe", Host: "certplane.test", Path: "/alice"}}}))
	p.mallory = ok(p.inter.IssueClient(pki.Options{CommonName: "mallory"}))
	p.bob = ok(p.root.IssueClient(pki.Options{CommonName: "bob"}))
	p.wrongEKU = ok(p.root.IssueClient(pki.Options{CommonName: "server-eku", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}))
	p.expired = ok(p.root.IssueClient(pki.Options{CommonName: "expired", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}))
	p.notYet = ok(p.root.IssueClient(pki.Options{CommonName: "future", NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(48 * time.Hour)}))
	p.stranger = ok(p.other.IssueClient(pki.Options{CommonName: "stranger"}))
	p.underRevoked = ok(p.revokedInter.IssueClient(pki.Options{CommonName: "under-revoked"}))
	p.underNotCA = ok(notCA.IssueClient(pki.Options{CommonName: "under-not-ca"}))
	p.deep = ok(p.deepB.IssueClient(pki.Options{CommonName: "deep"}))
	p.caPEM = pki.CertPEM(p.root.Cert)
	return p
}

func (p *attackPKI) crls(t *testing.T, revokeMallory, revokeInter bool) (rootCRL, interCRL []byte) {
	var rr, ir []pki.Revoked
	if revokeInter {
		rr = append(rr, pki.Revoked{Serial: p.revokedInter.Cert.SerialNumber})
	}
	if revokeMallory {
		ir = append(ir, pki.Revoked{Serial: p.mallory.Cert.SerialNumber})
	}
	rootCRL = pki.CRLPEM(ok(p.root.CRL(pki.CRLOptions{Revoked: rr})))
	interCRL = pki.CRLPEM(ok(p.inter.CRL(pki.CRLOptions{Revoked: ir})))
	return rootCRL, interCRL
}

// TestAttackMatrix: real handshakes, one per attack, each with the exact
// verdict and reason.
func TestAttackMatrix(t *testing.T) {
	p := newAttackPKI(t)
	rootCRL, interCRL := p.crls(t, true, true)
	revokedInterCRL := pki.CRLPEM(ok(p.revokedInter.CRL(pki.CRLOptions{})))
	now := time.Now()
	expiredCRL := pki.CRLPEM(ok(p.inter.CRL(pki.CRLOptions{ThisUpdate: now.Add(-60 * 24 * time.Hour), NextUpdate: now.Add(-30 * 24 * time.Hour)})))
	sha1Leaf, sha1Key := opensslSign(t, p.root.Cert, p.root.Key, "sha1-client", "sha1", "extendedKeyUsage=clientAuth\n")
	v1Inter, v1Key := opensslSign(t, p.root.Cert, p.root.Key, "v1-intermediate", "sha256", "")
	if v1Inter.Version != 1 {
		t.Fatalf("openssl made a v%d certificate, want v1", v1Inter.Version)
	}
	underV1, underV1Key := opensslSign(t, v1Inter, v1Key, "under-v1", "sha256", "extendedKeyUsage=clientAuth\n")
	aliceHash := sha256.Sum256(p.alice.Cert.Raw)
	aliceSPKI := sha256.Sum256(p.alice.Cert.RawSubjectPublicKeyInfo)

	chainCA := func(extra ...[]byte) *tlsv3.CertificateValidationContext {
		b := append([]byte{}, p.caPEM...)
		for _, e := range extra {
			b = append(b, e...)
		}
		return &tlsv3.CertificateValidationContext{TrustedCa: inline(b)}
	}
	withCRL := func(vc *tlsv3.CertificateValidationContext, crl ...[]byte) *tlsv3.CertificateValidationContext {
		var b []byte
		for _, c := range crl {
			b = append(b, c...)
		}
		vc.Crl = inline(b)
		return vc
	}
	san := func(typ tlsv3.SubjectAltNameMatcher_SanType, exact string) *tlsv3.SubjectAltNameMatcher {
		return &tlsv3.SubjectAltNameMatcher{SanType: typ, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: exact}}}
	}
	raw := func(c *x509.Certificate, key any, chain ...*x509.Certificate) *tls.Certificate {
		tc := &tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}
		for _, x := range chain {
			tc.Certificate = append(tc.Certificate, x.Raw)
		}
		return tc
	}

	cases := []struct {
		name    string
		vc      func() *tlsv3.CertificateValidationContext
		require bool
		client  *tls.Certificate
		want    Reason // "" = accept
	}{
		{"valid chain via intermediate", func() *tlsv3.CertificateValidationContext { return chainCA() }, true, clientOf(p.alice), ""},
		{"wrong EKU (serverAuth only)", func() *tlsv3.CertificateValidationContext { return chainCA() }, true, clientOf(p.wrongEKU), ReasonBadKeyUsage},
		{"v1 intermediate", func() *tlsv3.CertificateValidationContext { return chainCA() }, true, raw(underV1, underV1Key, v1Inter), ReasonUnknownCA},
		{"CA:FALSE intermediate", func() *tlsv3.CertificateValidationContext { return chainCA() }, true, clientOf(p.underNotCA), ReasonUnknownCA},
		{"revoked intermediate", func() *tlsv3.CertificateValidationContext {
			return withCRL(chainCA(), rootCRL, interCRL, revokedInterCRL)
		}, true, clientOf(p.underRevoked), ReasonRevoked},
		{"revoked leaf", func() *tlsv3.CertificateValidationContext { return withCRL(chainCA(), rootCRL, interCRL) }, true, clientOf(p.mallory), ReasonRevoked},
		{"unrevoked leaf, all CRLs", func() *tlsv3.CertificateValidationContext { return withCRL(chainCA(), rootCRL, interCRL) }, true, clientOf(p.alice), ""},
		{"CRL missing for the intermediate (full chain)", func() *tlsv3.CertificateValidationContext { return withCRL(chainCA(), rootCRL) }, true, clientOf(p.alice), ReasonCRLMissing},
		{"CRL missing for the root (full chain)", func() *tlsv3.CertificateValidationContext { return withCRL(chainCA(), interCRL) }, true, clientOf(p.alice), ReasonCRLMissing},
		{"same chain, leaf-only CRL mode", func() *tlsv3.CertificateValidationContext {
			vc := withCRL(chainCA(), interCRL)
			vc.OnlyVerifyLeafCertCrl = true
			return vc
		}, true, clientOf(p.alice), ""},
		{"expired CRL fails closed", func() *tlsv3.CertificateValidationContext { return withCRL(chainCA(), rootCRL, expiredCRL) }, true, clientOf(p.alice), ReasonCRLExpired},
		{"SAN allow-list miss", func() *tlsv3.CertificateValidationContext {
			vc := chainCA()
			vc.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{san(tlsv3.SubjectAltNameMatcher_URI, "spiffe://certplane.test/bob")}
			return vc
		}, true, clientOf(p.alice), ReasonSANMismatch},
		{"SAN allow-list hit", func() *tlsv3.CertificateValidationContext {
			vc := chainCA()
			vc.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{san(tlsv3.SubjectAltNameMatcher_DNS, "alice.certplane.test")}
			return vc
		}, false, clientOf(p.alice), ""},
		{"SAN matcher makes a certificate mandatory", func() *tlsv3.CertificateValidationContext {
			vc := chainCA()
			vc.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{san(tlsv3.SubjectAltNameMatcher_DNS, "alice.certplane.test")}
			return vc
		}, false, nil, ReasonNoCertificate},
		{"passthrough accepts an untrusted certificate", func() *tlsv3.CertificateValidationContext {
			return &tlsv3.CertificateValidationContext{TrustChainVerification: tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED}
		}, false, clientOf(p.stranger), ""},
		{"optional mode, no certificate", func() *tlsv3.CertificateValidationContext { return chainCA() }, false, nil, ""},
		{"verify mode, no certificate", func() *tlsv3.CertificateValidationContext { return chainCA() }, true, nil, ReasonNoCertificate},
		{"optional mode still verifies a presented certificate", func() *tlsv3.CertificateValidationContext { return chainCA() }, false, clientOf(p.stranger), ReasonUnknownCA},
		{"SHA-1 signed client certificate", func() *tlsv3.CertificateValidationContext { return chainCA() }, true, raw(sha1Leaf, sha1Key), ReasonBadSignatureAlgorithm},
		{"expired client certificate", func() *tlsv3.CertificateValidationContext { return chainCA() }, true, clientOf(p.expired), ReasonExpired},
		{"not yet valid client certificate", func() *tlsv3.CertificateValidationContext { return chainCA() }, true, clientOf(p.notYet), ReasonNotYetValid},
		{"unknown CA", func() *tlsv3.CertificateValidationContext { return chainCA() }, true, clientOf(p.stranger), ReasonUnknownCA},
		{"hash pin mismatch", func() *tlsv3.CertificateValidationContext {
			vc := chainCA()
			vc.VerifyCertificateHash = []string{hex.EncodeToString(aliceHash[:])}
			return vc
		}, true, clientOf(p.bob), ReasonPinMismatch},
		{"hash pin match, colon fingerprint form", func() *tlsv3.CertificateValidationContext {
			vc := chainCA()
			h := strings.ToUpper(hex.EncodeToString(aliceHash[:]))
			var parts []string
			for i := 0; i < len(h); i += 2 {
				parts = append(parts, h[i:i+2])
			}
			vc.VerifyCertificateHash = []string{strings.Join(parts, ":")}
			return vc
		}, true, clientOf(p.alice), ""},
		{"spki pin mismatch", func() *tlsv3.CertificateValidationContext {
			vc := chainCA()
			vc.VerifyCertificateSpki = []string{base64.StdEncoding.EncodeToString(aliceSPKI[:])}
			return vc
		}, true, clientOf(p.bob), ReasonPinMismatch},
		{"spki pin alone (no trusted_ca) accepts the pinned key", func() *tlsv3.CertificateValidationContext {
			return &tlsv3.CertificateValidationContext{VerifyCertificateSpki: []string{base64.StdEncoding.EncodeToString(aliceSPKI[:])}}
		}, false, clientOf(p.alice), ""},
		{"max depth exceeded", func() *tlsv3.CertificateValidationContext {
			vc := chainCA()
			vc.MaxVerifyDepth = wrapperspb.UInt32(2)
			return vc
		}, true, clientOf(p.deep), ReasonDepthExceeded},
		{"max depth just enough", func() *tlsv3.CertificateValidationContext {
			vc := chainCA()
			vc.MaxVerifyDepth = wrapperspb.UInt32(3)
			return vc
		}, true, clientOf(p.deep), ""},
		{"intermediate as trust anchor (partial chain)", func() *tlsv3.CertificateValidationContext {
			return &tlsv3.CertificateValidationContext{TrustedCa: inline(pki.CertPEM(p.inter.Cert))}
		}, true, clientOf(p.alice), ""},
		{"allow_expired accepts an expired certificate", func() *tlsv3.CertificateValidationContext {
			vc := chainCA()
			vc.AllowExpiredCertificate = true
			return vc
		}, true, clientOf(p.expired), ""},
		{"allow_expired still refuses an unknown CA", func() *tlsv3.CertificateValidationContext {
			vc := chainCA()
			vc.AllowExpiredCertificate = true
			return vc
		}, true, clientOf(p.stranger), ReasonUnknownCA},
		{"allow_expired still refuses the wrong EKU", func() *tlsv3.CertificateValidationContext {
			vc := chainCA()
			vc.AllowExpiredCertificate = true
			return vc
		}, true, clientOf(p.wrongEKU), ReasonBadKeyUsage},
	}
	srv := serverCert(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := NewVerifier(c.vc(), c.require, Options{})
			if err != nil {
				t.Fatalf("NewVerifier: %v", err)
			}
			f, peer := handshake(t, v, srv, c.client, tls.VersionTLS13)
			var got Reason
			if f != nil {
				got = f.Reason
			}
			if got != c.want {
				t.Fatalf("reason %q (%v), want %q", got, f, c.want)
			}
			if c.want == "" && c.client != nil {
				if len(peer) == 0 || !peer[0].Equal(c.client.Leaf) {
					t.Fatal("the accepted certificate was not kept for forwarding")
				}
				if x := XFCC(srv.Leaf, peer); !strings.Contains(x, "Hash=") || !strings.Contains(x, `Cert="`) {
					t.Fatalf("XFCC for the accepted certificate is %q", x)
				}
			}
		})
	}
}
