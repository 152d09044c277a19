package hardening_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/status"
)

// badCase is one defect applied to listener A's inputs.
type badCase struct {
	name string
	// apply breaks A's inputs and returns the file (relative to the tree
	// root) that the error must name.
	apply func(t *testing.T, e *env) string
	// reason is a part of the error text that says what is wrong.
	reason string
	// warning: the input is served anyway; check exits 0 and lists it under
	// warnings, and A keeps serving (possibly updated).
	warning bool
	// trust says how a trust-store defect is handled: trust admission is
	// per file, so the listener itself is not held back (issue #11 item 1).
	trust trustVerdict
}

// trustVerdict is what a defect of a trust store file does to listener A.
type trustVerdict int

const (
	listenerLastGood trustVerdict = iota // A is served from its last good version
	fileLastGood                         // the file's last good content is served: A's resources do not change
	servedFailClosed                     // the defect is served (an expired CRL): A's clients are refused
)

func badCases() []badCase {
	editA := func(e *env, old, new string) string {
		b := bytes.Replace(e.good[yamlA].data, []byte(old), []byte(new), 1)
		if bytes.Equal(b, e.good[yamlA].data) {
			e.t.Fatalf("edit of %s: %q not found", yamlA, old)
		}
		e.write(yamlA, b)
		return yamlA
	}
	replaceWith := func(rel string, mk func(p string) error) func(t *testing.T, e *env) string {
		return func(t *testing.T, e *env) string {
			p := e.path(rel)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := mk(p); err != nil {
				t.Fatal(err)
			}
			return rel
		}
	}
	return []badCase{
		// --- PEM and DER syntax ---
		{name: "truncated PEM", reason: "malformed or truncated PEM block at line 1", apply: func(t *testing.T, e *env) string {
			b := e.serverA.CertPEM()
			e.write(crtA, b[:len(b)/3])
			return crtA
		}},
		{name: "malformed PEM base64", reason: "malformed or truncated PEM block at line 1", apply: func(t *testing.T, e *env) string {
			e.write(crtA, bytes.Replace(e.serverA.CertPEM(), []byte("\n"), []byte("\n!!!!"), 2))
			return crtA
		}},
		{name: "empty certificate file", reason: "empty file", apply: func(t *testing.T, e *env) string {
			e.write(crtA, nil)
			return crtA
		}},
		{name: "empty key file", reason: "empty file", apply: func(t *testing.T, e *env) string {
			e.write(keyA, []byte("\n"))
			return keyA
		}},
		{name: "text that is not PEM", reason: "no PEM block found", apply: func(t *testing.T, e *env) string {
			e.write(crtA, []byte("see attached certificate\n"))
			return crtA
		}},
		{name: "DER certificate where PEM expected", reason: "file holds DER, not PEM; convert it with openssl x509 -inform der", apply: func(t *testing.T, e *env) string {
			e.write(crtA, e.serverA.Cert.Raw)
			return crtA
		}},
		{name: "DER key where PEM expected", reason: "file holds DER, not PEM; convert it with openssl pkey -inform der", apply: func(t *testing.T, e *env) string {
			der, err := x509.MarshalPKCS8PrivateKey(e.serverA.Key)
			if err != nil {
				t.Fatal(err)
			}
			e.write(keyA, der)
			return keyA
		}},
		{name: "DER CA bundle where PEM expected", trust: fileLastGood, reason: "file holds DER, not PEM", apply: func(t *testing.T, e *env) string {
			e.write(caA, e.rootA.Cert.Raw)
			return caA
		}},
		// --- keys ---
		{name: "encrypted key (openssl pkcs8 -topk8 -v2 aes-256-cbc)", reason: "encrypted private keys are not supported; decrypt with openssl pkey", apply: func(t *testing.T, e *env) string {
			e.write(keyA, encryptedKey(t, e.serverA.KeyPEM()))
			return keyA
		}},
		{name: "key that does not match its certificate", reason: "private key (ECDSA P-256) does not match the public key (ECDSA P-256) of certificate 1 (CN=localhost)", apply: func(t *testing.T, e *env) string {
			e.write(keyA, e.interA.Server("localhost").KeyPEM())
			return keyA
		}},
		{name: "wrong key type (RSA key for an ECDSA certificate)", reason: "private key (RSA 2048) does not match the public key (ECDSA P-256)", apply: func(t *testing.T, e *env) string {
			k, err := pki.NewKey(pki.RSA2048)
			if err != nil {
				t.Fatal(err)
			}
			e.write(keyA, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))}))
			return keyA
		}},
		{name: "certificate and key files swapped", reason: "are the certificate and key files swapped?", apply: func(t *testing.T, e *env) string {
			e.write(keyA, e.serverA.CertPEM())
			return keyA
		}},
		// --- chains and dates ---
		{name: "chain in the wrong order", reason: "the chain is out of order", apply: func(t *testing.T, e *env) string {
			e.write(crtA, pki.CertPEM(e.serverA.Cert, e.rootA.Cert, e.interA.Cert))
			return crtA
		}},
		{name: "expired server certificate", reason: "certificate 1 (CN=localhost) expired on", apply: func(t *testing.T, e *env) string {
			l := e.interA.Server("localhost", pkitest.Expired())
			e.write(crtA, l.CertPEM())
			e.write(keyA, l.KeyPEM())
			return crtA
		}},
		{name: "server certificate not yet valid", reason: "certificate 1 (CN=localhost) is not valid until", apply: func(t *testing.T, e *env) string {
			l := e.interA.Server("localhost", pkitest.NotYetValid())
			e.write(crtA, l.CertPEM())
			e.write(keyA, l.KeyPEM())
			return crtA
		}},
		{name: "server certificate without serverAuth", reason: "lacks the serverAuth extended key usage", apply: func(t *testing.T, e *env) string {
			l := e.interA.Server("localhost", pkitest.EKU(x509.ExtKeyUsageClientAuth))
			e.write(crtA, l.CertPEM())
			e.write(keyA, l.KeyPEM())
			return crtA
		}},
		{name: "SHA-1 signed server certificate (openssl -sha1)", reason: "is signed with SHA-1 (ECDSA-SHA1), which TLS clients refuse; reissue it signed with SHA-256 (certplane pki server, or openssl with -sha256)", apply: func(t *testing.T, e *env) string {
			crt, key := opensslCert(t, e.interA.CertPEM(), keyPEM(t, e.interA), "localhost", "sha1", extServer)
			e.write(crtA, append(crt, e.interA.CertPEM()...))
			e.write(keyA, key)
			return crtA
		}},
		{name: "SHA-1 signed intermediate CA (openssl -sha1)", reason: "certificate 2 (CN=SHA1 Issuing CA) is signed with SHA-1 (ECDSA-SHA1), which TLS clients refuse; reissue it signed with SHA-256 (certplane pki ca --intermediate-of, or openssl with -sha256)", apply: func(t *testing.T, e *env) string {
			ica, ikey := opensslCert(t, e.rootA.CertPEM(), keyPEM(t, e.rootA), "SHA1 Issuing CA", "sha1", extCA)
			crt, key := opensslCert(t, ica, ikey, "localhost", "sha256", extServer)
			e.write(crtA, append(crt, ica...))
			e.write(keyA, key)
			return crtA
		}},
		{name: "X.509 v1 certificate as intermediate CA", reason: "certificate 2 (CN=V1 Issuing CA) is an X.509 v1 certificate used as an intermediate CA", apply: func(t *testing.T, e *env) string {
			ica, ikey := opensslCert(t, e.rootA.CertPEM(), keyPEM(t, e.rootA), "V1 Issuing CA", "sha256", "")
			crt, key := opensslCert(t, ica, ikey, "localhost", "sha256", extServer)
			e.write(crtA, append(crt, ica...))
			e.write(keyA, key)
			return crtA
		}},
		// --- trust stores and CRLs ---
		{name: "leaf in a trust store", trust: fileLastGood, reason: "certificate 3 (CN=alice-a) is not a CA certificate (no basicConstraints CA:TRUE); a trust store holds only CA certificates", apply: func(t *testing.T, e *env) string {
			e.write(caA, pki.CertPEM(e.rootA.Cert, e.interA.Cert, e.aliceA.Cert))
			return caA
		}},
		{name: "expired CA in a bundle", trust: fileLastGood, reason: "certificate 3 (CN=Old Root) expired on", apply: func(t *testing.T, e *env) string {
			old := pkitest.NewCA(t, "Old Root", pkitest.Expired())
			e.write(caA, pki.CertPEM(e.rootA.Cert, e.interA.Cert, old.Cert))
			return caA
		}},
		{name: "private key in a trust bundle", trust: fileLastGood, reason: `unexpected "PRIVATE KEY" PEM block`, apply: func(t *testing.T, e *env) string {
			e.write(caA, append(pki.CertPEM(e.rootA.Cert, e.interA.Cert), keyPEM(t, e.interA)...))
			return caA
		}},
		{name: "CRL from the wrong CA (impostor key)", trust: fileLastGood, reason: `CRL 1 (issuer CN=A Root) is not signed by any CA of trust store "ta"`, apply: func(t *testing.T, e *env) string {
			e.write(crlA, e.rootA.Impostor().CRLPEM())
			return crlA
		}},
		{name: "CRL of a CA outside the store", trust: fileLastGood, reason: `is not signed by any CA of trust store "ta": no CA there has subject CN=Stranger CA`, apply: func(t *testing.T, e *env) string {
			e.write(crlA, pkitest.NewCA(t, "Stranger CA").CRLPEM())
			return crlA
		}},
		{name: "expired CRL", trust: servedFailClosed, reason: "(nextUpdate); an expired CRL fails closed: publish a fresh one", apply: func(t *testing.T, e *env) string {
			e.write(crlA, e.rootA.CRLPEM(pkitest.CRLExpired()))
			// The expired CRL is served and remembered as A's newest, so
			// the good tree needs a newer one: the old one is a rollback.
			e.renewGoodCRL(e.rootA.CRLPEM())
			return crlA
		}},
		{name: "CRL with an unknown critical extension", trust: fileLastGood, reason: "has an unknown critical extension 1.3.6.1.4.1.99999.1; it cannot be used (RFC 5280 5.2)", apply: func(t *testing.T, e *env) string {
			e.write(crlA, crlWithCriticalExtension(t, e.rootA))
			return crlA
		}},
		{name: "garbage DER CRL", trust: fileLastGood, reason: "not a PEM or DER CRL", apply: func(t *testing.T, e *env) string {
			e.write(crlA, []byte{0x30, 0x03, 0x02, 0x01, 0x01})
			return crlA
		}},
		// --- file system ---
		{name: "huge file", reason: "over the limit of 1048576 bytes", apply: func(t *testing.T, e *env) string {
			e.write(crtA, append(e.serverA.CertPEM(), bytes.Repeat([]byte("\n"), config.DefaultMaxFileSize)...))
			return crtA
		}},
		{name: "symlink loop", reason: "symbolic link loop", apply: replaceWith(crtA, func(p string) error { return os.Symlink("tls.crt", p) })},
		{name: "broken symlink", reason: "broken symbolic link to ..data/tls.key", apply: replaceWith(keyA, func(p string) error { return os.Symlink("..data/tls.key", p) })},
		{name: "file that cannot be read", reason: "cannot read", apply: func(t *testing.T, e *env) string {
			if os.Geteuid() != 0 {
				if err := os.Chmod(e.path(keyA), 0); err != nil {
					t.Fatal(err)
				}
				return keyA
			}
			// root reads through mode 000; /proc/self/mem fails every read
			// at offset 0 with EIO, for whichever process reads it.
			return replaceWith(keyA, func(p string) error { return os.Symlink("/proc/self/mem", p) })(t, e)
		}},
		{name: "named pipe instead of a file", reason: "not a regular file (a named pipe)", apply: replaceWith(crtA, func(p string) error { return syscall.Mkfifo(p, 0o600) })},
		{name: "key file missing", reason: "missing: file does not exist", apply: func(t *testing.T, e *env) string {
			e.tr.Remove(keyA)
			return keyA
		}},
		// --- config ---
		{name: "unknown YAML key", reason: `unknown key "adress" in a listener`, apply: func(t *testing.T, e *env) string {
			return editA(e, "address:", "adress:")
		}},
		{name: "YAML syntax error", reason: "invalid YAML", apply: func(t *testing.T, e *env) string {
			return editA(e, "certificates: [a]", "certificates: [a")
		}},
		{name: "duplicate listener name", reason: `listener "a" is defined more than once`, apply: func(t *testing.T, e *env) string {
			e.tr.WriteConfig("dup.yaml", "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    certificates: [a]\n    routes: [{path_prefix: /, backend: backend-a}]\n")
			return "config/dup.yaml"
		}},
		// The same address twice, neither listener choosing by server_names
		// (an overlapping but different address is a clash: config tests).
		{name: "port clash", reason: `with listener "c" (`, apply: func(t *testing.T, e *env) string {
			e.tr.WriteConfig("c.yaml", strings.Replace(string(e.good[yamlA].data), "name: a\n", "name: c\n", 1)[:strings.Index(string(e.good[yamlA].data), "backends:")])
			return yamlA
		}},
		{name: "missing backend", reason: `listener "a": routes[0]: backend "nope" is not defined in any config file`, apply: func(t *testing.T, e *env) string {
			return editA(e, "backend: backend-a}", "backend: nope}")
		}},
		{name: "missing trust store", reason: `client_auth: trust store "partners" not found`, apply: func(t *testing.T, e *env) string {
			return editA(e, "trust_store: ta", "trust_store: partners")
		}},
		{name: "invalid SAN matcher (regex)", reason: `subject_alt_names[0]: regex "(?=x)" does not compile as RE2`, apply: func(t *testing.T, e *env) string {
			return editA(e, "      trust_store: ta", "      trust_store: ta\n      subject_alt_names:\n        - {type: dns, regex: \"(?=x)\"}")
		}},
		{name: "invalid SAN matcher (two kinds)", reason: "subject_alt_names[0]: want exactly one of exact, prefix, suffix, contains, regex; got 2", apply: func(t *testing.T, e *env) string {
			return editA(e, "      trust_store: ta", "      trust_store: ta\n      subject_alt_names:\n        - {type: uri, prefix: \"spiffe://a/\", exact: \"spiffe://a/b\"}")
		}},
		{name: "bad address (host name)", reason: `host "localhost" must be an IP address`, apply: func(t *testing.T, e *env) string {
			return editA(e, "address: 127.0.0.1:", "address: localhost:")
		}},
		{name: "bad address (port)", reason: `port "99999" must be a number from 1 to 65535`, apply: func(t *testing.T, e *env) string {
			b := e.good[yamlA].data
			i := bytes.Index(b, []byte("127.0.0.1:"))
			j := i + bytes.IndexByte(b[i:], '\n')
			e.write(yamlA, append(append(append([]byte{}, b[:i]...), "127.0.0.1:99999"...), b[j:]...))
			return yamlA
		}},
		// --- served with a warning ---
		{name: "duplicate CA (warning, used once)", warning: true, reason: "duplicates a CA already in", apply: func(t *testing.T, e *env) string {
			e.tr.Trust("ta", "again.crt", e.interA.CertPEM())
			return caA
		}},
		{name: "SHA-1 CA in a trust store (warning)", warning: true, reason: "is signed with SHA-1 (ECDSA-SHA1); it still works as a trust anchor, but client certificates signed with SHA-1 are refused at the handshake (bad_signature_algorithm)", apply: func(t *testing.T, e *env) string {
			ica, _ := opensslCert(t, e.rootA.CertPEM(), keyPEM(t, e.rootA), "SHA1 Partner CA", "sha1", extCA)
			return stripRoot(e, e.tr.Trust("ta", "partner.pem", ica))
		}},
		{name: "X.509 v1 self-signed root in a trust store (warning)", warning: true, reason: "is an X.509 v1 self-signed root; it is accepted as a trust anchor, as OpenSSL and Envoy do", apply: func(t *testing.T, e *env) string {
			return stripRoot(e, e.tr.Trust("ta", "legacy.pem", opensslV1Root(t)))
		}},
		{name: "group-readable key (warning)", warning: true, reason: "private key is readable by group or others (mode 0640); chmod 600 it", apply: func(t *testing.T, e *env) string {
			e.tr.Write(keyA, e.serverA.KeyPEM(), 0o640)
			return keyA
		}},
		{name: "world-readable key (warning)", warning: true, reason: "private key is readable by group or others (mode 0644); chmod 600 it", apply: func(t *testing.T, e *env) string {
			e.tr.Write(keyA, e.serverA.KeyPEM(), 0o644)
			return keyA
		}},
	}
}

func stripRoot(e *env, abs string) string {
	return strings.TrimPrefix(abs, e.tr.Root+string(os.PathSeparator))
}

// TestBadInputMatrix applies each defect to listener A's inputs while
// rotating listener B's certificate in the same step, and checks both
// planes end to end:
//
//	(a) certplane check exits 1 and names the file and the problem;
//	(b) the control plane keeps publishing A's last good resources, byte
//	    for byte, and /status names the file and the reason;
//	(c) the proxy keeps serving A with the old certificate (a real
//	    handshake sees the old serial);
//	(d) B updates: a new handshake to B sees B's new serial.
//
// One control plane and one proxy serve every case in turn; the good tree
// is restored between cases.
func TestBadInputMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	certplaneBin(t)
	oldA := e.serverA.Serial()
	problems, warnings := 0, 0
	start := time.Now()
	for _, tc := range badCases() {
		ok := t.Run(tc.name, func(t *testing.T) {
			e.t = t
			defer func() { e.t = t }()
			defer func() {
				e.restore()
				e.waitClean()
				if e.baseline == nil {
					// A good file was renewed: wait for it on the observer,
					// then take A's new baseline.
					waitFor(t, "the renewed CRL published", func() bool { return secretHolds(e.obs, "trust/ta", e.good[crlA].data) })
					e.baseline = e.obs.hashesA()
				}
			}()
			rel := tc.apply(t, e)
			file := e.path(rel)
			newB := e.rotateB()

			// (b) the control plane: the defect is reported, B's new
			// certificate is published, and A's resources are unchanged.
			var found status.Problem
			waitFor(t, "the defect on /status and B's new certificate published", func() bool {
				if s := e.obs.secretSerial("server/b"); s == nil || s.Cmp(newB) != 0 {
					return false
				}
				list := e.cp.Status().Errors
				if tc.warning {
					list = e.cp.Status().Warnings
				}
				for _, p := range list {
					if (p.File == file || strings.Contains(p.Reason, file)) && strings.Contains(p.Reason, tc.reason) {
						found = p
						return true
					}
				}
				return false
			})
			st := e.status()
			switch {
			case tc.warning:
				if errs := st.ControlPlane.Errors; len(errs) != 0 {
					t.Errorf("warning case has errors: %+v", errs)
				}
			case tc.trust == fileLastGood:
				e.checkFileLastGood(t, st, found)
			case tc.trust == listenerLastGood:
				e.checkLastGood(t, st, found)
			}

			// (c) the proxy still serves A with its last good certificate,
			// or, for a defect served to fail closed, refuses A's client.
			serial, err := handshake(e.portA, e.rootA, e.aliceA)
			if tc.trust == servedFailClosed {
				waitFor(t, "A's client refused", func() bool {
					_, err := handshake(e.portA, e.rootA, e.aliceA)
					return err != nil
				})
				serial, err = oldA, nil
			}
			if err != nil {
				t.Fatalf("handshake to A after the defect: %v", err)
			}
			if serial.Cmp(oldA) != 0 {
				t.Errorf("A presented serial %x, want the last good %x", serial, oldA)
			}
			if p := e.prx.Status().Problems; len(p) > 0 {
				t.Errorf("the proxy refused resources: %v", p)
			}

			// (d) B updates on the proxy too.
			var lastB *big.Int
			waitFor(t, "B's new certificate on the proxy", func() bool {
				lastB, _ = handshake(e.portB, e.rootB, e.aliceB)
				return lastB != nil && lastB.Cmp(newB) == 0
			})

			// (a) certplane check names the file and the problem.
			out, code := runCLI(t, "check", "--certs", e.tr.Certs, "--config", e.tr.Config)
			wantCode := 1
			if tc.warning {
				wantCode = 0
			}
			if code != wantCode {
				t.Errorf("certplane check exit %d, want %d:\n%s", code, wantCode, out)
			}
			if !strings.Contains(out, file) || !strings.Contains(out, tc.reason) {
				t.Errorf("certplane check output lacks %s or %q:\n%s", file, tc.reason, out)
			}
			section := "problems ("
			if tc.warning {
				section = "warnings ("
			}
			if !strings.Contains(out, section) {
				t.Errorf("certplane check output lacks a %q section:\n%s", section, out)
			}
		})
		if !ok {
			continue
		}
		if tc.warning {
			warnings++
		} else {
			problems++
		}
	}
	t.Logf("bad-input matrix: %d problem cases and %d warning cases passed on both planes in %s",
		problems, warnings, time.Since(start).Round(time.Millisecond))
}

// checkFileLastGood asserts (b) for a defect of a trust store file: the
// file's last good content is served, so A's resources are the baseline
// bytes and A is served from current inputs; /status names the problem and
// says what is served.
func (e *env) checkFileLastGood(t *testing.T, st status.Status, p status.Problem) {
	t.Helper()
	if got := e.obs.hashesA(); !equalHashes(got, e.baseline) {
		t.Errorf("A's published resources changed:\n got %v\nwant %v", got, e.baseline)
	}
	if !strings.Contains(p.Reason, "last good") {
		t.Errorf("/status problem %+v does not say the file's last good content is served", p)
	}
	for _, l := range st.ControlPlane.Listeners {
		if l.State != status.StateServing {
			t.Errorf("/status listener %s state %q, want %q", l.Name, l.State, status.StateServing)
		}
	}
}

// renewGoodCRL makes data the good content of A's root CRL from now on:
// restoring the tree then publishes it, and A's baseline follows.
func (e *env) renewGoodCRL(data []byte) {
	e.good[crlA] = goodFile{data: data, mode: 0o644}
	e.baseline = nil
}

// secretHolds reports whether the observer's secret name carries data in its
// validation context's CRLs.
func secretHolds(o *observer, name string, data []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Contains(o.cur.Secrets[name].GetValidationContext().GetCrl().GetInlineBytes(), data)
}

// checkLastGood asserts (b) for a blocking defect: A's resources are the
// baseline bytes, /status says A is served from its last good version and
// names the problem.
func (e *env) checkLastGood(t *testing.T, st status.Status, p status.Problem) {
	t.Helper()
	if got := e.obs.hashesA(); !equalHashes(got, e.baseline) {
		t.Errorf("A's published resources changed:\n got %v\nwant %v", got, e.baseline)
	}
	if !p.LastGoodServed {
		t.Errorf("/status problem %+v: last_good_served is false", p)
	}
	var a *status.Listener
	for i := range st.ControlPlane.Listeners {
		if st.ControlPlane.Listeners[i].Name == "a" {
			a = &st.ControlPlane.Listeners[i]
		}
	}
	if a == nil || a.State != status.StateLastGood {
		t.Errorf("/status listener a = %+v, want state %q", a, status.StateLastGood)
	}
	for _, l := range st.ControlPlane.Listeners {
		if l.Name == "b" && l.State != status.StateServing {
			t.Errorf("/status listener b state %q, want %q", l.State, status.StateServing)
		}
	}
}
