package config_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const (
	webCrt   = "certs/server/web/tls.crt"
	webKey   = "certs/server/web/tls.key"
	clientCA = "certs/trust/clients/ca.pem"
	rootCRL  = "certs/trust/clients/root.crl"
)

type loadCase struct {
	name   string
	mutate func(t *testing.T, f *fixture)
	// want lists the exact problems as "listener| text", $ROOT for the tree.
	want func(f *fixture) []string
	// warn lists the exact warnings; nil means none.
	warn func(f *fixture) []string
	// present lists the listeners left in the model; nil means ["other"].
	present []string
}

func TestLoadValidTree(t *testing.T) {
	f := newFixture(t)
	m := f.load()
	assertProblems(t, "problems", f.render(m.Problems), nil)
	assertProblems(t, "warnings", f.render(m.Warnings), nil)
	if got := listenerNames(m); !slices.Equal(got, []string{"other", "web"}) {
		t.Fatalf("listeners = %v", got)
	}
	web := m.Listeners[1]
	want := &config.Listener{
		Name: "web", Address: "0.0.0.0:8443", Host: "0.0.0.0", Port: 8443,
		Certificates: []string{"web"},
		TLS: config.TLSPolicy{Name: config.TLSPolicy12, MinVersion: config.TLSv12, MaxVersion: config.TLSv13, CipherSuites: []string{
			"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
			"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"}},
		HTTP2:             true,
		HTTP:              config.HTTPPolicy{HeadersWithUnderscores: config.UnderscoresDrop},
		ClientAuth:        config.ClientAuth{Mode: config.ModeVerify, TrustStore: "clients", CRL: config.CRLFullChain, AdvertiseCANames: true},
		ClientCertHeaders: []config.ClientCertHeader{config.HeaderXFCC},
		XFCC:              config.DefaultXFCC(),
		Routes:            []config.Route{{PathPrefix: "/", Backend: "app"}},
		SourceFile:        f.path("config/web.yaml"),
	}
	if web.Fingerprint == "" {
		t.Error("listener web has no fingerprint")
	}
	if diff := cmp.Diff(want, web, cmpopts.IgnoreFields(config.Listener{}, "Fingerprint")); diff != "" {
		t.Errorf("listener web (-want +got):\n%s", diff)
	}
	if got := m.Listeners[0].ClientCertHeaders; len(got) != 0 {
		t.Errorf("mode off: client_cert_headers = %v, want none", got)
	}
	kp := m.Servers["web"]
	if kp == nil || len(kp.Chain) != 2 || !bytes.Equal(kp.ChainPEM, f.web.ChainPEM()) || kp.CertFile != f.path(webCrt) {
		t.Fatalf("server web = %+v", kp)
	}
	if !bytes.HasPrefix(kp.KeyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("key not normalised to PKCS#8")
	}
	if m.Servers["other"] == nil || m.Clients["upstream"] == nil {
		t.Fatalf("flat server layout or client missing: %v %v", m.Servers, m.Clients)
	}
	ts := m.Trust["clients"]
	if ts == nil || len(ts.CAs) != 2 || len(ts.CRLs) != 2 {
		t.Fatalf("trust store clients = %+v", ts)
	}
	if !bytes.Equal(ts.CAPEM, append(f.root.CertPEM(), f.inter.CertPEM()...)) {
		t.Errorf("CAPEM is not the CAs in file order")
	}
	if n := bytes.Count(ts.CRLPEM.Bytes(), []byte("BEGIN X509 CRL")); n != 2 {
		t.Errorf("CRLPEM holds %d CRLs, want 2 (the DER one converted)", n)
	}
	plain := m.Backends["plain"]
	wantHC := config.HealthCheck{Path: "/healthz", Interval: 5 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2}
	if plain == nil || *plain.HealthCheck != wantHC || len(plain.Endpoints) != 2 || plain.Endpoints[1].IsIP() {
		t.Errorf("backend plain = %+v", plain)
	}
	if app := m.Backends["app"]; app == nil || *app.TLS != (config.UpstreamTLS{TrustStore: "internal", Certificate: "upstream", SNI: "app.internal"}) {
		t.Errorf("backend app = %+v", app)
	}
	if m.Sources["web"] != f.path("config/web.yaml") || m.Sources["other"] != f.path("config/other.yaml") {
		t.Errorf("sources = %v", m.Sources)
	}
}

func TestLoadBadInputs(t *testing.T) {
	for _, tc := range badInputCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tc.mutate(t, f)
			m := f.load()
			assertProblems(t, "problems", f.render(m.Problems), tc.want(f))
			var warn []string
			if tc.warn != nil {
				warn = tc.warn(f)
			}
			assertProblems(t, "warnings", f.render(m.Warnings), warn)
			present := tc.present
			if present == nil {
				present = []string{"other"}
			}
			if got := listenerNames(m); !slices.Equal(got, present) {
				t.Errorf("listeners in model = %v, want %v", got, present)
			}
		})
	}
}

// webBlocked is the usual expectation: one problem that blocks "web".
func webBlocked(text string, args ...any) func(f *fixture) []string {
	return func(f *fixture) []string { return []string{"web| " + fmt.Sprintf(text, args...)} }
}

func badInputCases() []loadCase {
	return []loadCase{
		// --- PEM syntax ---
		{
			name: "truncated PEM",
			mutate: func(t *testing.T, f *fixture) {
				b := f.web.ChainPEM()
				f.write(webCrt, b[:len(b)/3])
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: malformed or truncated PEM block at line 1 (no valid END line or bad base64)"),
		},
		{
			name: "half-written chain (second block cut)",
			mutate: func(t *testing.T, f *fixture) {
				b := f.web.ChainPEM()
				f.write(webCrt, b[:len(b)-200])
			},
			want: func(f *fixture) []string {
				line := bytes.Count(pki.CertPEM(f.web.Cert), []byte("\n")) + 1
				return []string{fmt.Sprintf("web| $ROOT/certs/server/web/tls.crt: malformed or truncated PEM block at line %d (no valid END line or bad base64)", line)}
			},
		},
		{
			name: "malformed PEM base64",
			mutate: func(t *testing.T, f *fixture) {
				b := bytes.Replace(f.web.ChainPEM(), []byte("\n"), []byte("\n!!!!"), 2)
				f.write(webCrt, b)
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: malformed or truncated PEM block at line 1 (no valid END line or bad base64)"),
		},
		{
			name:   "empty certificate file",
			mutate: func(t *testing.T, f *fixture) { f.write(webCrt, nil) },
			want:   webBlocked("$ROOT/certs/server/web/tls.crt: empty file"),
		},
		{
			name:   "empty key file",
			mutate: func(t *testing.T, f *fixture) { f.write(webKey, []byte("\n\n")) },
			want:   webBlocked("$ROOT/certs/server/web/tls.key: empty file"),
		},
		{
			name:   "not PEM at all",
			mutate: func(t *testing.T, f *fixture) { f.write(webCrt, []byte("hello, I am a certificate\n")) },
			want:   webBlocked("$ROOT/certs/server/web/tls.crt: no PEM block found"),
		},
		{
			name:   "DER certificate where PEM expected",
			mutate: func(t *testing.T, f *fixture) { f.write(webCrt, f.web.Cert.Raw) },
			want:   webBlocked("$ROOT/certs/server/web/tls.crt: file holds DER, not PEM; convert it with openssl x509 -inform der -in FILE -out FILE.pem"),
		},
		{
			name: "DER key where PEM expected",
			mutate: func(t *testing.T, f *fixture) {
				der, _ := x509.MarshalPKCS8PrivateKey(f.web.Key)
				f.write(webKey, der)
			},
			want: webBlocked("$ROOT/certs/server/web/tls.key: file holds DER, not PEM; convert it with openssl pkey -inform der -in FILE -out FILE.pem"),
		},
		{
			name: "DER CA bundle where PEM expected",
			mutate: func(t *testing.T, f *fixture) {
				f.write(clientCA, f.root.Cert.Raw)
			},
			want: webBlocked("$ROOT/certs/trust/clients/ca.pem: file holds DER, not PEM; convert it with openssl x509 -inform der -in FILE -out FILE.pem"),
		},
		{
			name: "garbage DER certificate inside PEM",
			mutate: func(t *testing.T, f *fixture) {
				f.write(webCrt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}))
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: certificate at line 1: x509: malformed tbs certificate"),
		},
		// --- keys ---
		{
			name: "encrypted PKCS#8 key",
			mutate: func(t *testing.T, f *fixture) {
				f.write(webKey, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x00}}))
			},
			want: webBlocked("$ROOT/certs/server/web/tls.key: encrypted private keys are not supported; decrypt with openssl pkey"),
		},
		{
			name: "legacy encrypted PEM key",
			mutate: func(t *testing.T, f *fixture) {
				f.write(webKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
					Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
					Bytes:   bytes.Repeat([]byte{1}, 48)}))
			},
			want: webBlocked("$ROOT/certs/server/web/tls.key: encrypted private keys are not supported; decrypt with openssl pkey"),
		},
		{
			name:   "key does not match certificate",
			mutate: func(t *testing.T, f *fixture) { f.write(webKey, f.other.KeyPEM()) },
			want:   webBlocked("$ROOT/certs/server/web/tls.key: private key (ECDSA P-256) does not match the public key (ECDSA P-256) of certificate 1 (CN=web.example) in $ROOT/certs/server/web/tls.crt"),
		},
		{
			name: "wrong key type (RSA key for an ECDSA certificate)",
			mutate: func(t *testing.T, f *fixture) {
				k, err := pki.NewKey(pki.RSA2048)
				if err != nil {
					t.Fatal(err)
				}
				f.write(webKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))}))
			},
			want: webBlocked("$ROOT/certs/server/web/tls.key: private key (RSA 2048) does not match the public key (ECDSA P-256) of certificate 1 (CN=web.example) in $ROOT/certs/server/web/tls.crt"),
		},
		{
			name:   "certificate in the key file (swapped files)",
			mutate: func(t *testing.T, f *fixture) { f.write(webKey, f.web.ChainPEM()) },
			want:   webBlocked("$ROOT/certs/server/web/tls.key: no private key found, only certificates (are the certificate and key files swapped?)"),
		},
		{
			name: "weak RSA 1024 server key",
			mutate: func(t *testing.T, f *fixture) {
				k, err := rsa.GenerateKey(rand.Reader, 1024)
				if err != nil {
					t.Fatal(err)
				}
				l := f.inter.Server("web.example", pkitest.Key(k))
				f.tr.Server("web", l)
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: certificate 1 (CN=web.example): RSA key of 1024 bits is too weak; use at least 2048 bits"),
		},
		// --- chains ---
		{
			name: "chain in the wrong order",
			mutate: func(t *testing.T, f *fixture) {
				f.write(webCrt, pki.CertPEM(f.web.Cert, f.root.Cert, f.inter.Cert))
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: certificate 2 (CN=Test Root) did not sign certificate 1 (CN=web.example) (certificate 3 (CN=Test Issuing CA) is; the chain is out of order): order the chain leaf first, then each issuer"),
		},
		{
			name:   "intermediate missing from the chain file is fine, a foreign one is not",
			mutate: func(t *testing.T, f *fixture) { f.write(webCrt, pki.CertPEM(f.web.Cert, f.root.Cert)) },
			want:   webBlocked("$ROOT/certs/server/web/tls.crt: certificate 2 (CN=Test Root) did not sign certificate 1 (CN=web.example) (it is not in the file): order the chain leaf first, then each issuer"),
		},
		{
			name: "leaf is a CA",
			mutate: func(t *testing.T, f *fixture) {
				f.write(webCrt, f.inter.CertPEM())
				f.write(webKey, caKeyPEM(t, f.inter))
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: certificate 1 (CN=Test Issuing CA) is a CA certificate; the first certificate must be the server's own (leaf) certificate"),
		},
		{
			name: "server certificate without serverAuth",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.Server("web", f.inter.Server("web.example", pkitest.EKU(x509.ExtKeyUsageClientAuth)))
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: certificate 1 (CN=web.example) lacks the serverAuth extended key usage; TLS peers will refuse it"),
		},
		{
			name: "expired server certificate",
			mutate: func(t *testing.T, f *fixture) {
				f.web = f.inter.Server("web.example", pkitest.Expired())
				f.tr.Server("web", f.web)
			},
			want: func(f *fixture) []string {
				return []string{"web| $ROOT/certs/server/web/tls.crt: certificate 1 (CN=web.example) expired on " + day(f.web.Cert.NotAfter)}
			},
		},
		{
			name: "server certificate not yet valid",
			mutate: func(t *testing.T, f *fixture) {
				f.web = f.inter.Server("web.example", pkitest.NotYetValid())
				f.tr.Server("web", f.web)
			},
			want: func(f *fixture) []string {
				return []string{"web| $ROOT/certs/server/web/tls.crt: certificate 1 (CN=web.example) is not valid until " + day(f.web.Cert.NotBefore)}
			},
		},
		{
			name: "server certificate expiring soon is a warning",
			mutate: func(t *testing.T, f *fixture) {
				f.web = f.inter.Server("web.example", pkitest.Validity(10*24*time.Hour))
				f.tr.Server("web", f.web)
			},
			want: func(f *fixture) []string { return nil },
			warn: func(f *fixture) []string {
				return []string{fmt.Sprintf("| $ROOT/certs/server/web/tls.crt: certificate 1 (CN=web.example) expires on %s, in 9 days", day(f.web.Cert.NotAfter))}
			},
			present: []string{"other", "web"},
		},
		{
			name: "SHA-1 signed server certificate (openssl)",
			mutate: func(t *testing.T, f *fixture) {
				crt, key := opensslCert(t, f.inter.CertPEM(), caKeyPEM(t, f.inter), "web.example", "sha1", extServer)
				f.write(webCrt, append(crt, f.inter.CertPEM()...))
				f.write(webKey, key)
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: certificate 1 (CN=web.example) is signed with SHA-1 (ECDSA-SHA1), which TLS clients refuse; reissue it signed with SHA-256 (certplane pki server, or openssl with -sha256)"),
		},
		{
			name: "SHA-1 signed intermediate (openssl)",
			mutate: func(t *testing.T, f *fixture) {
				ica, ikey := opensslCert(t, f.root.CertPEM(), caKeyPEM(t, f.root), "SHA1 Issuing CA", "sha1", extCA)
				crt, key := opensslCert(t, ica, ikey, "web.example", "sha256", extServer)
				f.write(webCrt, append(crt, ica...))
				f.write(webKey, key)
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: certificate 2 (CN=SHA1 Issuing CA) is signed with SHA-1 (ECDSA-SHA1), which TLS clients refuse; reissue it signed with SHA-256 (certplane pki ca --intermediate-of, or openssl with -sha256)"),
		},
		{
			name: "X.509 v1 intermediate (openssl x509 -req without extensions)",
			mutate: func(t *testing.T, f *fixture) {
				ica, ikey := opensslCert(t, f.root.CertPEM(), caKeyPEM(t, f.root), "V1 Issuing CA", "sha256", "")
				crt, key := opensslCert(t, ica, ikey, "web.example", "sha256", extServer)
				f.write(webCrt, append(crt, ica...))
				f.write(webKey, key)
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: certificate 2 (CN=V1 Issuing CA) is an X.509 v1 certificate used as an intermediate CA; v1 certificates cannot say they are CAs, so verifiers refuse them: reissue it as a v3 CA (basicConstraints CA:TRUE)"),
		},
		// --- trust stores ---
		{
			name: "leaf in a trust store",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.Trust("clients", "ca.pem", f.root.CertPEM(), f.inter.CertPEM(), pki.CertPEM(f.web.Cert))
			},
			want: webBlocked("$ROOT/certs/trust/clients/ca.pem: certificate 3 (CN=web.example) is not a CA certificate (no basicConstraints CA:TRUE); a trust store holds only CA certificates"),
		},
		{
			name:   "duplicate CA is a warning, kept once",
			mutate: func(t *testing.T, f *fixture) { f.tr.Trust("clients", "again.crt", f.inter.CertPEM()) },
			want:   func(f *fixture) []string { return nil },
			warn: func(f *fixture) []string {
				return []string{"| $ROOT/certs/trust/clients/ca.pem: certificate 2 (CN=Test Issuing CA) duplicates a CA already in $ROOT/certs/trust/clients/again.crt; it is used once"}
			},
			present: []string{"other", "web"},
		},
		{
			name: "expired CA in a bundle",
			mutate: func(t *testing.T, f *fixture) {
				old := pkitest.NewCA(t, "Old Root", pkitest.Expired())
				f.tr.Trust("clients", "ca.pem", f.root.CertPEM(), old.CertPEM(), f.inter.CertPEM())
				f.vars["expiry"] = day(old.Cert.NotAfter)
			},
			want: func(f *fixture) []string {
				return []string{"web| $ROOT/certs/trust/clients/ca.pem: certificate 2 (CN=Old Root) expired on " + f.vars["expiry"] + "; remove it from the bundle or replace it"}
			},
		},
		{
			name: "private key in a trust bundle",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.Trust("clients", "ca.pem", f.root.CertPEM(), f.inter.CertPEM(), caKeyPEM(t, f.inter))
			},
			want: func(f *fixture) []string {
				line := bytes.Count(append(f.root.CertPEM(), f.inter.CertPEM()...), []byte("\n")) + 1
				return []string{fmt.Sprintf("web| $ROOT/certs/trust/clients/ca.pem: unexpected \"PRIVATE KEY\" PEM block at line %d; a trust store holds only CERTIFICATE and X509 CRL blocks", line)}
			},
		},
		{
			name: "CRL signed by the wrong key (impostor CA)",
			mutate: func(t *testing.T, f *fixture) {
				f.write(rootCRL, f.root.Impostor().CRLPEM())
			},
			// A file never admitted is left out, the rest of the store is
			// served: without a CRL every client under the root is refused.
			want: webBlockedNone(`| $ROOT/certs/trust/clients/root.crl: CRL 1 (issuer CN=Test Root) is not signed by any CA of trust store "clients": x509: ECDSA verification failure; the CRLs of this file are left out until it is fixed`),
			warn: func(f *fixture) []string {
				return []string{rootNoCRL}
			},
			present: []string{"other", "web"},
		},
		{
			name:   "CRL of a CA outside the store",
			mutate: func(t *testing.T, f *fixture) { f.write(rootCRL, pkitest.NewCA(t, "Stranger CA").CRLPEM()) },
			want:   webBlockedNone(`| $ROOT/certs/trust/clients/root.crl: CRL 1 (issuer CN=Stranger CA) is not signed by any CA of trust store "clients": no CA there has subject CN=Stranger CA; the CRLs of this file are left out until it is fixed`),
			warn: func(f *fixture) []string {
				return []string{rootNoCRL}
			},
			present: []string{"other", "web"},
		},
		{
			name: "expired CRL",
			mutate: func(t *testing.T, f *fixture) {
				f.write(rootCRL, f.root.CRLPEM(pkitest.CRLTimes(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC))))
			},
			// Served all the same, so that the root's clients fail closed
			// at the handshake, and an error.
			want:    webBlockedNone("| $ROOT/certs/trust/clients/root.crl: CRL 1 (issuer CN=Test Root) expired on 2020-02-01T00:00:00Z (nextUpdate); an expired CRL fails closed: publish a fresh one"),
			present: []string{"other", "web"},
		},
		{
			// Issue #12: config accepted it, both data planes refused it.
			name: "CRL with a critical freshest CRL extension",
			mutate: func(t *testing.T, f *fixture) {
				f.write(rootCRL, crlWithExtensionOID(t, f.root, asn1.ObjectIdentifier{2, 5, 29, 46}, []byte{0x30, 0x00}))
			},
			want: webBlockedNone("| $ROOT/certs/trust/clients/root.crl: CRL 1 (issuer CN=Test Root) has a critical freshest CRL extension (2.5.29.46), which BoringSSL (Envoy) does not handle; it cannot be used (RFC 5280 5.2): reissue the CRL with it non-critical; the CRLs of this file are left out until it is fixed"),
			warn: func(f *fixture) []string {
				return []string{rootNoCRL}
			},
			present: []string{"other", "web"},
		},
		{
			name: "CRL with an unknown critical extension",
			mutate: func(t *testing.T, f *fixture) {
				f.write(rootCRL, crlWithExtension(t, f.root, true))
			},
			want: webBlockedNone("| $ROOT/certs/trust/clients/root.crl: CRL 1 (issuer CN=Test Root) has an unknown critical extension 1.3.6.1.4.1.99999.1; it cannot be used (RFC 5280 5.2); the CRLs of this file are left out until it is fixed"),
			warn: func(f *fixture) []string {
				return []string{rootNoCRL}
			},
			present: []string{"other", "web"},
		},
		{
			name:    "CRL with an unknown non-critical extension is fine",
			mutate:  func(t *testing.T, f *fixture) { f.write(rootCRL, crlWithExtension(t, f.root, false)) },
			want:    func(f *fixture) []string { return nil },
			present: []string{"other", "web"},
		},
		{
			name:   "garbage CRL",
			mutate: func(t *testing.T, f *fixture) { f.write(rootCRL, []byte{0x30, 0x03, 0x02, 0x01, 0x01}) },
			want:   webBlockedNone("| $ROOT/certs/trust/clients/root.crl: not a PEM or DER CRL: crl: malformed TBSCertList; the file is left out until it is fixed"),
			warn: func(f *fixture) []string {
				return []string{rootNoCRL}
			},
			present: []string{"other", "web"},
		},
		{
			name: "CRL block inside the CA bundle is loaded (Envoy reads CRLs in trusted_ca)",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.Remove(rootCRL)
				f.tr.Trust("clients", "ca.pem", f.root.CertPEM(), f.inter.CertPEM(), f.root.Impostor().CRLPEM())
			},
			want: webBlockedNone(`| $ROOT/certs/trust/clients/ca.pem: CRL 1 (issuer CN=Test Root) is not signed by any CA of trust store "clients": x509: ECDSA verification failure; the CRLs of this file are left out until it is fixed`),
			warn: func(f *fixture) []string {
				return []string{rootNoCRL}
			},
			present: []string{"other", "web"},
		},
		{
			name: "full-chain CRL checking with a CA lacking a CRL is a warning",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.Remove(rootCRL)
			},
			want: func(f *fixture) []string { return nil },
			warn: func(f *fixture) []string {
				return []string{`web| $ROOT/certs/trust/clients: listener "web" checks CRLs for the full chain, but CA CN=Test Root has no CRL in trust store "clients": every client certificate under it will be refused (unable to get CRL); add its CRL or set crl: leaf_only`}
			},
			present: []string{"other", "web"},
		},
		{
			name: "full-chain CRL checking with many CAs lacking a CRL is one warning per listener",
			mutate: func(t *testing.T, f *fixture) {
				var pems [][]byte
				for i := range 7 {
					pems = append(pems, pkitest.NewCA(t, fmt.Sprintf("Partner %d", i+1)).CertPEM())
				}
				f.tr.Trust("clients", "partners.pem", pems...)
			},
			want: func(f *fixture) []string { return nil },
			warn: func(f *fixture) []string {
				return []string{`web| $ROOT/certs/trust/clients: listener "web" checks CRLs for the full chain, but 7 CAs have no CRL in trust store "clients" (CN=Partner 1; CN=Partner 2; CN=Partner 3; CN=Partner 4; CN=Partner 5; and 2 more): every client certificate under them will be refused (unable to get CRL); add their CRLs or set crl: leaf_only`}
			},
			present: []string{"other", "web"},
		},
		{
			name: "v1 self-signed root in a trust store is a warning",
			mutate: func(t *testing.T, f *fixture) {
				v1 := opensslV1Root(t)
				f.tr.Trust("clients", "legacy.pem", v1)
			},
			want: func(f *fixture) []string { return nil },
			warn: func(f *fixture) []string {
				return []string{
					"| $ROOT/certs/trust/clients/legacy.pem: certificate 1 (CN=Legacy V1 Root) is an X.509 v1 self-signed root; it is accepted as a trust anchor, as OpenSSL and Envoy do, but should be reissued as a v3 CA",
					`web| $ROOT/certs/trust/clients: listener "web" checks CRLs for the full chain, but CA CN=Legacy V1 Root has no CRL in trust store "clients": every client certificate under it will be refused (unable to get CRL); add its CRL or set crl: leaf_only`,
				}
			},
			present: []string{"other", "web"},
		},
		{
			name: "SHA-1 CA in a trust store is a warning",
			mutate: func(t *testing.T, f *fixture) {
				ica, _ := opensslCert(t, f.root.CertPEM(), caKeyPEM(t, f.root), "SHA1 Partner CA", "sha1", extCA)
				f.tr.Trust("internal", "partner.pem", ica)
			},
			want: func(f *fixture) []string { return nil },
			warn: func(f *fixture) []string {
				return []string{"| $ROOT/certs/trust/internal/partner.pem: certificate 1 (CN=SHA1 Partner CA) is signed with SHA-1 (ECDSA-SHA1); it still works as a trust anchor, but client certificates signed with SHA-1 are refused at the handshake (bad_signature_algorithm)"}
			},
			present: []string{"other", "web"},
		},
		{
			name: "empty trust store directory",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.Remove("certs/trust/clients")
				f.tr.Write("certs/trust/clients/README", nil, 0o644)
			},
			want: webBlocked("$ROOT/certs/trust/clients: trust store holds no CA certificate: add *.pem or *.crt files"),
			warn: func(f *fixture) []string {
				return []string{"| $ROOT/certs/trust/clients/README: ignored: a trust store reads *.pem, *.crt and *.crl files"}
			},
		},
		// --- file system ---
		{
			name: "huge file",
			mutate: func(t *testing.T, f *fixture) {
				f.write(webCrt, append(f.web.ChainPEM(), bytes.Repeat([]byte("\n"), config.DefaultMaxFileSize)...))
			},
			want: func(f *fixture) []string {
				return []string{fmt.Sprintf("web| $ROOT/certs/server/web/tls.crt: file is %d bytes, over the limit of 1048576 bytes", len(f.web.ChainPEM())+config.DefaultMaxFileSize)}
			},
		},
		{
			name: "symlink loop",
			mutate: func(t *testing.T, f *fixture) {
				p := f.path(webCrt)
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("tls.crt", p); err != nil {
					t.Fatal(err)
				}
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: symbolic link loop: too many levels of symbolic links"),
		},
		{
			name: "symlink loop on a certificate directory",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.Remove("certs/server/web")
				if err := os.Symlink("web", f.path("certs/server/web")); err != nil {
					t.Fatal(err)
				}
			},
			want: webBlocked("$ROOT/certs/server/web: symbolic link loop: too many levels of symbolic links"),
		},
		{
			name: "broken symlink",
			mutate: func(t *testing.T, f *fixture) {
				p := f.path(webKey)
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("..data/tls.key", p); err != nil {
					t.Fatal(err)
				}
			},
			want: webBlocked("$ROOT/certs/server/web/tls.key: broken symbolic link to ..data/tls.key: file does not exist"),
		},
		{
			name: "named pipe instead of a file",
			mutate: func(t *testing.T, f *fixture) {
				p := f.path(webCrt)
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(p, 0o600); err != nil {
					t.Skipf("mkfifo: %v", err)
				}
			},
			want: webBlocked("$ROOT/certs/server/web/tls.crt: not a regular file (a named pipe)"),
		},
		{
			name:   "key file missing",
			mutate: func(t *testing.T, f *fixture) { f.tr.Remove(webKey) },
			want:   webBlocked("$ROOT/certs/server/web/tls.key: missing: file does not exist"),
		},
		{
			name:   "flat layout certificate without key",
			mutate: func(t *testing.T, f *fixture) { f.tr.Remove("certs/server/other.key") },
			want: func(f *fixture) []string {
				return []string{"other| $ROOT/certs/server/other.crt: no private key for this certificate: want $ROOT/certs/server/other.key"}
			},
			present: []string{"web"},
		},
		{
			name:   "both layouts for one name",
			mutate: func(t *testing.T, f *fixture) { f.tr.ServerFlat("web", f.web) },
			want:   webBlocked(`$ROOT/certs/server/web: certificate "web" is defined twice: $ROOT/certs/server/web/ and $ROOT/certs/server/web.crt; keep one layout`),
		},
		{
			name:   "group-readable key is a warning",
			mutate: func(t *testing.T, f *fixture) { f.tr.Write(webKey, f.web.KeyPEM(), 0o640) },
			want:   func(f *fixture) []string { return nil },
			warn: func(f *fixture) []string {
				return []string{"| $ROOT/certs/server/web/tls.key: private key is readable by group or others (mode 0640); chmod 600 it"}
			},
			present: []string{"other", "web"},
		},
		{
			name: "unused broken certificate is reported without a listener",
			mutate: func(t *testing.T, f *fixture) {
				f.write("certs/server/spare.crt", []byte("junk"))
				f.write("certs/server/spare.key", f.web.KeyPEM())
			},
			want:    webBlockedNone("| $ROOT/certs/server/spare.crt: no PEM block found"),
			present: []string{"other", "web"},
		},
		// --- config ---
		{
			name:   "unknown YAML key",
			mutate: func(t *testing.T, f *fixture) { f.editWeb("address:", "adress:") },
			want: func(f *fixture) []string {
				return []string{`| $ROOT/config/web.yaml:3: unknown key "adress" in a listener (known keys: name, address, server_names, certificates, tls_policy, http2, http, client_auth, client_cert_headers, routes)`}
			},
		},
		{
			name: "unknown nested YAML key",
			mutate: func(t *testing.T, f *fixture) {
				f.editWeb("      mode: verify", "      mode: verify\n      verify_depth: 3")
			},
			want: func(f *fixture) []string {
				return []string{`| $ROOT/config/web.yaml:7: unknown key "verify_depth" in client_auth (known keys: mode, trust_store, crl, allow_expired, max_verify_depth, certificate_hashes, spki_hashes, advertise_ca_names, subject_alt_names, subjects, ocsp)`}
			},
		},
		{
			name:   "YAML syntax error",
			mutate: func(t *testing.T, f *fixture) { f.editWeb("    certificates: [web]", "    certificates: [web") },
			want: func(f *fixture) []string {
				return []string{`| $ROOT/config/web.yaml:4: invalid YAML: did not find expected ',' or ']'`}
			},
		},
		{
			name: "wrong value type",
			mutate: func(t *testing.T, f *fixture) {
				f.editWeb("      mode: verify", "      mode: verify\n      allow_expired: sometimes")
			},
			want: func(f *fixture) []string {
				return []string{"| $ROOT/config/web.yaml:7: listeners[0] (\"web\").client_auth.allow_expired: cannot unmarshal !!str `sometimes` into bool"}
			},
		},
		{
			name: "duplicate listener name across files",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.WriteConfig("more.yaml", "listeners:\n  - name: web\n    address: 0.0.0.0:8444\n    certificates: [web]\n    routes: [{path_prefix: /, backend: plain}]\n")
			},
			want: webBlocked(`$ROOT/config/web.yaml:2: listener "web" is defined more than once: $ROOT/config/more.yaml:2, $ROOT/config/web.yaml:2`),
		},
		{
			name: "duplicate backend name",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.WriteConfig("other.yaml", strings.Replace(otherYAML, "name: plain", "name: app", 1))
			},
			want: func(f *fixture) []string {
				return []string{
					`other| $ROOT/config/other.yaml:6: listener "other": routes[0]: backend "plain" is not defined in any config file`,
					`web| $ROOT/config/web.yaml:11: backend "app" is defined more than once: $ROOT/config/other.yaml:8, $ROOT/config/web.yaml:11`,
				}
			},
			present: []string{},
		},
		{
			name: "port clash with an overlapping address",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.WriteConfig("other.yaml", strings.Replace(otherYAML, "127.0.0.1:9443", "127.0.0.1:8443", 1))
			},
			want: func(f *fixture) []string {
				return []string{
					`other| $ROOT/config/other.yaml:2: listener "other": address 127.0.0.1:8443 clashes with listener "web" (0.0.0.0:8443, $ROOT/config/web.yaml:2): two listeners cannot share a port on overlapping addresses`,
					`web| $ROOT/config/web.yaml:2: listener "web": address 0.0.0.0:8443 clashes with listener "other" (127.0.0.1:8443, $ROOT/config/other.yaml:2): two listeners cannot share a port on overlapping addresses`,
				}
			},
			present: []string{},
		},
		{
			name: "port clash is reported even beside another problem",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.WriteConfig("other.yaml", strings.Replace(otherYAML, "127.0.0.1:9443", "127.0.0.1:8443", 1))
				f.write(webCrt, nil)
			},
			want: func(f *fixture) []string {
				return []string{
					`other| $ROOT/config/other.yaml:2: listener "other": address 127.0.0.1:8443 clashes with listener "web" (0.0.0.0:8443, $ROOT/config/web.yaml:2): two listeners cannot share a port on overlapping addresses`,
					`web| $ROOT/certs/server/web/tls.crt: empty file`,
					`web| $ROOT/config/web.yaml:2: listener "web": address 0.0.0.0:8443 clashes with listener "other" (127.0.0.1:8443, $ROOT/config/other.yaml:2): two listeners cannot share a port on overlapping addresses`,
				}
			},
			present: []string{},
		},
		{
			name: "duplicate listener name in one file",
			mutate: func(t *testing.T, f *fixture) {
				f.editWeb("backends:", "  - name: web\n    address: 0.0.0.0:8444\n    certificates: [web]\n    routes: [{path_prefix: /, backend: app}]\nbackends:")
			},
			want: webBlocked(`$ROOT/config/web.yaml:10: listener "web" is defined more than once: $ROOT/config/web.yaml:2, $ROOT/config/web.yaml:10`),
		},
		{
			name: "same port on IPv6 wildcard does not clash with IPv4",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.WriteConfig("other.yaml", strings.Replace(otherYAML, "127.0.0.1:9443", "\"[::]:8443\"", 1))
			},
			want:    func(f *fixture) []string { return nil },
			present: []string{"other", "web"},
		},
		{
			name:   "missing backend",
			mutate: func(t *testing.T, f *fixture) { f.editWeb("backend: app}", "backend: nope}") },
			want: func(f *fixture) []string {
				return []string{
					`web| $ROOT/config/web.yaml:9: listener "web": routes[0]: backend "nope" is not defined in any config file`,
				}
			},
		},
		{
			name:   "missing server certificate",
			mutate: func(t *testing.T, f *fixture) { f.editWeb("certificates: [web]", "certificates: [nope]") },
			want:   webBlocked(`$ROOT/config/web.yaml:4: listener "web": certificate "nope" not found: want certs/server/nope/tls.crt and tls.key, or certs/server/nope.crt and nope.key`),
		},
		{
			name:   "missing trust store",
			mutate: func(t *testing.T, f *fixture) { f.editWeb("trust_store: clients", "trust_store: partners") },
			want:   webBlocked(`$ROOT/config/web.yaml:7: listener "web": client_auth: trust store "partners" not found: want a directory certs/trust/partners/ with *.pem or *.crt files`),
		},
		{
			name:   "backend client certificate missing blocks the listener routing to it",
			mutate: func(t *testing.T, f *fixture) { f.editWeb("certificate: upstream", "certificate: gone") },
			want:   webBlocked(`$ROOT/config/web.yaml:13: backend "app": tls: client certificate "gone" not found: want certs/client/gone/tls.crt and tls.key, or certs/client/gone.crt and gone.key`),
		},
		{
			name:   "bad listener address (host name)",
			mutate: func(t *testing.T, f *fixture) { f.editWeb("0.0.0.0:8443", "localhost:8443") },
			want:   webBlocked(`$ROOT/config/web.yaml:3: listener "web": address "localhost:8443": host "localhost" must be an IP address (0.0.0.0 or :: for every interface)`),
		},
		{
			name:   "bad listener address (port)",
			mutate: func(t *testing.T, f *fixture) { f.editWeb("0.0.0.0:8443", "0.0.0.0:99999") },
			want:   webBlocked(`$ROOT/config/web.yaml:3: listener "web": address "0.0.0.0:99999": port "99999" must be a number from 1 to 65535`),
		},
		{
			name:   "bad backend endpoint",
			mutate: func(t *testing.T, f *fixture) { f.editWeb(`"10.0.0.1:8080"`, `"bad_host!:8080"`) },
			want:   webBlocked(`$ROOT/config/web.yaml:12: backend "app": endpoints[0] "bad_host!:8080": host "bad_host!" is neither an IP address nor a DNS name`),
		},
		{
			name: "invalid SAN matcher (two kinds)",
			mutate: func(t *testing.T, f *fixture) {
				f.editWeb("      trust_store: clients", "      trust_store: clients\n      subject_alt_names:\n        - {type: uri, prefix: \"spiffe://a/\", exact: \"spiffe://a/b\"}")
			},
			want: webBlocked(`$ROOT/config/web.yaml:9: listener "web": client_auth: subject_alt_names[0]: want exactly one of exact, prefix, suffix, contains, regex; got 2`),
		},
		{
			name: "invalid SAN matcher (regex)",
			mutate: func(t *testing.T, f *fixture) {
				f.editWeb("      trust_store: clients", "      trust_store: clients\n      subject_alt_names:\n        - {type: dns, regex: \"(?=lookahead)\"}")
			},
			want: webBlocked("$ROOT/config/web.yaml:9: listener \"web\": client_auth: subject_alt_names[0]: regex \"(?=lookahead)\" does not compile as RE2: error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
		},
		{
			name: "invalid SAN matcher (type)",
			mutate: func(t *testing.T, f *fixture) {
				f.editWeb("      trust_store: clients", "      trust_store: clients\n      subject_alt_names:\n        - {type: cn, exact: alice}")
			},
			want: webBlocked(`$ROOT/config/web.yaml:9: listener "web": client_auth: subject_alt_names[0]: type "cn": want dns, uri, email or ip`),
		},
		{
			name:   "passthrough with a trust store",
			mutate: func(t *testing.T, f *fixture) { f.editWeb("mode: verify", "mode: passthrough") },
			want:   webBlocked(`$ROOT/config/web.yaml:6: listener "web": client_auth: mode passthrough accepts any client certificate without verifying it, so trust_store cannot apply (use mode verify)`),
		},
		{
			name: "optional with pins",
			mutate: func(t *testing.T, f *fixture) {
				f.editWeb("mode: verify", "mode: optional\n      spki_hashes: [\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"]")
			},
			want: webBlocked(`$ROOT/config/web.yaml:6: listener "web": client_auth: mode optional with subject_alt_names or pins: in Envoy any SAN matcher or pin makes a client certificate mandatory, so the listener would not be optional (use mode verify)`),
		},
		{
			name:   "verify without trust store",
			mutate: func(t *testing.T, f *fixture) { f.editWeb("      trust_store: clients\n", "") },
			want:   webBlocked(`$ROOT/config/web.yaml:6: listener "web": client_auth: mode verify needs a trust_store (a directory under certs/trust)`),
		},
		{
			name: "bad certificate hash",
			mutate: func(t *testing.T, f *fixture) {
				f.editWeb("mode: verify", "mode: verify\n      certificate_hashes: [\"AB:CD\"]")
			},
			want: webBlocked(`$ROOT/config/web.yaml:7: listener "web": client_auth: certificate_hashes[0] "AB:CD": want the SHA-256 of the certificate's DER as 64 hex digits (openssl x509 -in cert.pem -noout -fingerprint -sha256)`),
		},
		{
			name: "cipher suite outside the allowed set",
			mutate: func(t *testing.T, f *fixture) {
				f.editWeb("    certificates: [web]", "    certificates: [web]\n    tls_policy: {cipher_suites: [AES128-SHA]}")
			},
			want: webBlocked(`$ROOT/config/web.yaml:5: listener "web": tls_policy: cipher suite "AES128-SHA" is not allowed; choose from ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-RSA-AES256-GCM-SHA384, ECDHE-ECDSA-CHACHA20-POLY1305, ECDHE-RSA-CHACHA20-POLY1305`),
		},
		{
			name: "TLS 1.1 refused",
			mutate: func(t *testing.T, f *fixture) {
				f.editWeb("    certificates: [web]", "    certificates: [web]\n    tls_policy: {min_version: \"1.1\"}")
			},
			want: webBlocked(`$ROOT/config/web.yaml:5: listener "web": tls_policy: min_version: TLS 1.1 is not allowed; want "1.2" or "1.3"`),
		},
		{
			name: "second certificate without DNS SAN",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.Server("ip", f.inter.Server("10.1.1.1"))
				f.editWeb("certificates: [web]", "certificates: [web, ip]")
			},
			want: webBlocked(`$ROOT/config/web.yaml:4: listener "web": certificate "ip" ($ROOT/certs/server/ip/tls.crt) has no DNS SAN; every certificate after the first is chosen by SNI and needs at least one`),
		},
		{
			name: "DNS SAN repeated across a listener's certificates",
			mutate: func(t *testing.T, f *fixture) {
				f.tr.Server("web2", f.inter.Server("web2.example", pkitest.DNS("WEB.example")))
				f.editWeb("certificates: [web]", "certificates: [web, web2]")
			},
			want: webBlocked(`$ROOT/config/web.yaml:4: listener "web": DNS name "WEB.example" is in both certificate "web" and certificate "web2"; SNI could not choose between them`),
		},
	}
}

// rootNoCRL is the full-chain warning when the root's CRL is left out.
const rootNoCRL = `web| $ROOT/certs/trust/clients: listener "web" checks CRLs for the full chain, but CA CN=Test Root has no CRL in trust store "clients": every client certificate under it will be refused (unable to get CRL); add its CRL or set crl: leaf_only`

// webBlockedNone is for cases whose problems block no listener.
func webBlockedNone(lines ...string) func(f *fixture) []string {
	return func(f *fixture) []string { return lines }
}

// crlWithExtensionOID signs a CRL carrying a critical extension.
func crlWithExtensionOID(t *testing.T, ca *pkitest.CA, oid asn1.ObjectIdentifier, value []byte) []byte {
	t.Helper()
	now := time.Now().Add(-time.Minute)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:          big.NewInt(78),
		ThisUpdate:      now,
		NextUpdate:      now.Add(7 * 24 * time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: oid, Critical: true, Value: value}},
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pki.CRLPEM(der)
}

// crlWithExtension signs a CRL carrying a private extension.
func crlWithExtension(t *testing.T, ca *pkitest.CA, critical bool) []byte {
	t.Helper()
	now := time.Now().Add(-time.Minute)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:          big.NewInt(77),
		ThisUpdate:      now,
		NextUpdate:      now.Add(7 * 24 * time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: critical, Value: []byte{0x05, 0x00}}},
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pki.CRLPEM(der)
}

// opensslV1Root makes a self-signed X.509 v1 root the way old guides did
// (openssl x509 -req -signkey, no extensions).
func opensslV1Root(t *testing.T) []byte {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed: cannot make a v1 root (Go refuses to)")
	}
	dir := t.TempDir()
	key, csr, crt := filepath.Join(dir, "k.pem"), filepath.Join(dir, "r.csr"), filepath.Join(dir, "c.pem")
	for _, args := range [][]string{
		{"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=Legacy V1 Root"},
		{"x509", "-req", "-in", csr, "-signkey", key, "-days", "365", "-sha256", "-out", crt},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	b, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKubernetesDataLayout(t *testing.T) {
	f := newFixture(t)
	f.tr.Remove("certs/server/web")
	f.tr.KubeSecret("server/web", f.web)
	m := f.load()
	assertProblems(t, "problems", f.render(m.Problems), nil)
	if got := listenerNames(m); !slices.Equal(got, []string{"other", "web"}) {
		t.Fatalf("listeners = %v", got)
	}
	if kp := m.Servers["web"]; kp.CertFile != f.path(webCrt) || !bytes.Equal(kp.ChainPEM, f.web.ChainPEM()) {
		t.Fatalf("server web read from %s", kp.CertFile)
	}
	// The kubelet swaps ..data atomically: the next load sees the new pair.
	next := f.inter.Server("web.example")
	f.tr.KubeSecret("server/web", next)
	m = f.load()
	if kp := m.Servers["web"]; kp == nil || !kp.Chain[0].Equal(next.Cert) {
		t.Fatalf("rotated pair not picked up")
	}
	// A ConfigMap-style trust store and config directory work the same way.
	dir := f.path("certs/trust/clients")
	data := filepath.Join(dir, "..2026_11_22")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ca.pem", "root.crl", "inter.crl"} {
		if err := os.Rename(filepath.Join(dir, n), filepath.Join(data, n)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("..2026_11_22", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	m = f.load()
	assertProblems(t, "problems", f.render(m.Problems), nil)
	if ts := m.Trust["clients"]; ts == nil || len(ts.CAs) != 2 || len(ts.CRLs) != 2 || len(ts.Files) != 3 {
		t.Fatalf("trust store via ..data = %+v", ts)
	}
}

// TestUnreadableFile makes a key file unreadable. Root reads any file, so
// when the test runs as root it drops the file-system capabilities of one
// locked OS thread (setfsuid to nobody) and loads from that thread.
func TestUnreadableFile(t *testing.T) {
	f := newFixture(t)
	if err := os.Chmod(f.path(webKey), 0); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// The other keys stay 0600 and must stay readable to nobody.
		for _, k := range []string{"certs/server/other.key", "certs/client/upstream/tls.key"} {
			if err := os.Chown(f.path(k), nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}
	}
	load := func() (*config.Model, error) { return config.Load(f.tr.Certs, f.tr.Config) }
	var m *config.Model
	var err error
	if os.Geteuid() == 0 {
		// nobody must reach the files: open the temp directories' modes.
		for d := f.tr.Root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		m, err = loadAsNobody(t, load)
	} else {
		m, err = load()
	}
	if err != nil {
		t.Fatal(err)
	}
	assertProblems(t, "problems", f.render(m.Problems), []string{"web| $ROOT/certs/server/web/tls.key: cannot read: permission denied"})
	if got := listenerNames(m); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("listeners = %v", got)
	}
}

func TestLoadMissingDirectory(t *testing.T) {
	f := newFixture(t)
	_, err := config.Load(f.tr.Certs, filepath.Join(f.tr.Root, "nope"))
	if want := filepath.Join(f.tr.Root, "nope") + ": missing: file does not exist"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

// TestKeyFormats loads the key encodings operators have: PKCS#8, PKCS#1
// (openssl genrsa of old), SEC1 with the EC PARAMETERS block that openssl
// ecparam -genkey writes first, and a key file that also holds the chain.
func TestKeyFormats(t *testing.T) {
	root := pkitest.NewCA(t, "Key Root")
	ec := root.Server("ec.example")
	rsaLeaf := root.Server("rsa.example", pkitest.KeyType(pki.RSA2048))
	ecDER, err := x509.MarshalECPrivateKey(ec.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	sec1 := append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaLeaf.Key.(*rsa.PrivateKey))})
	for _, tc := range []struct {
		name     string
		leaf     *pkitest.Leaf
		key      []byte
		wantDesc string
	}{
		{"pkcs8", ec, ec.KeyPEM(), "ECDSA P-256"},
		{"sec1 with parameters", ec, sec1, "ECDSA P-256"},
		{"pkcs1", rsaLeaf, pkcs1, "RSA 2048"},
		{"combined chain and key", ec, append(ec.ChainPEM(), ec.KeyPEM()...), "ECDSA P-256"},
	} {
		kp, warnings, err := config.ParseKeyPair(config.RoleServer, "k", "k.crt", tc.leaf.ChainPEM(), "k.key", tc.key)
		if err != nil || len(warnings) != 0 {
			t.Errorf("%s: %v %v", tc.name, err, warnings)
			continue
		}
		again, err := x509.ParsePKCS8PrivateKey(mustPEM(t, kp.KeyPEM))
		if err != nil || !kp.Chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(again.(crypto.Signer).Public()) {
			t.Errorf("%s: KeyPEM is not the PKCS#8 of the key: %v", tc.name, err)
		}
	}
	_, _, err = config.ParseKeyPair(config.RoleServer, "k", "k.crt", ec.ChainPEM(), "k.key", append(ec.KeyPEM(), rsaLeaf.KeyPEM()...))
	if want := "k.key: second private key at line 6; a key file holds exactly one"; err == nil || err.Error() != want {
		t.Errorf("two keys: %v, want %s", err, want)
	}
}

func mustPEM(t *testing.T, b []byte) []byte {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM")
	}
	return blk.Bytes
}

func TestTrustStoreExpiryWarnings(t *testing.T) {
	// Half a second past a whole second: certificate and CRL times are
	// whole seconds, so the minutes and days left are fixed.
	now := time.Now().Truncate(time.Second).Add(500 * time.Millisecond)
	ca := pkitest.NewCA(t, "Soon Root", pkitest.ValidBetween(now.Add(-time.Hour), now.Add(72*time.Hour)))
	crl := ca.CRLPEM(pkitest.CRLTimes(now.Add(-time.Hour), now.Add(90*time.Minute)))
	ts, warnings, err := config.Loader{Now: func() time.Time { return now }}.ParseTrustStore("s", map[string][]byte{"s/ca.pem": ca.CertPEM(), "s/ca.crl": crl})
	if err != nil || len(ts.CRLs) != 1 {
		t.Fatal(err)
	}
	var got []string
	for _, w := range warnings {
		got = append(got, w.Error())
	}
	assertProblems(t, "warnings", got, []string{
		fmt.Sprintf("s/ca.pem: certificate 1 (CN=Soon Root) expires on %s, in 2 days", day(ca.Cert.NotAfter)),
		fmt.Sprintf("s/ca.crl: CRL 1 (issuer CN=Soon Root) expires on %s (nextUpdate), in 89 minutes: publish a fresh one before then, or clients of that CA are refused", day(now.Add(90*time.Minute))),
	})
}

// TestNoListenerWarns: a config directory that defines no listener is a
// warning (nothing is served, never what an operator meant), not an error.
func TestNoListenerWarns(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no yaml file", map[string]string{"README": "x"}, "holds no .yaml or .yml file: no listener is defined"},
		{"only comments", map[string]string{"a.yaml": "# nothing yet\n"}, "no listener is defined in its 1 config file(s)"},
		{"backends only", map[string]string{"b.yaml": "backends:\n  - name: b\n    endpoints: [\"127.0.0.1:1\"]\n"}, "no listener is defined in its 1 config file(s)"},
		{"a broken file", map[string]string{"a.yaml": "listeners: [\n"}, "no listener is defined by the 0 config file(s) that parse (1 more have errors)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			certs, cfg := filepath.Join(dir, "certs"), filepath.Join(dir, "config")
			for _, d := range []string{certs, cfg} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for name, data := range c.files {
				if err := os.WriteFile(filepath.Join(cfg, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := config.Load(certs, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Warnings) != 1 || m.Warnings[0].File != cfg || !strings.Contains(m.Warnings[0].Error(), c.want) {
				t.Errorf("warnings = %v, want one on %s saying %q", m.Warnings, cfg, c.want)
			}
		})
	}
}
