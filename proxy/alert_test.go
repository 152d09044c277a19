package proxy

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/proxy/mtls"
	"github.com/certplane/certplane/proxy/proxytest"
)

// goAlertText is how Go's TLS client words each alert the matrix expects
// ("remote error: tls: " + text), keyed by the RFC 8446 numbers: it checks
// the numbers of mtls.Alert too.
var goAlertText = map[mtls.Alert]string{
	40:  "handshake failure",
	43:  "unsupported certificate",
	44:  "revoked certificate",
	45:  "expired certificate",
	46:  "unknown certificate",
	48:  "unknown certificate authority",
	116: "certificate required",
}

var tlsVersions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// TestAttackMatrixAlerts: every refusal of the attack matrix sends the
// precise TLS alert Envoy sends for it (certificate_required, revoked,
// expired, unknown CA...), not bad_certificate for all, in TLS 1.2 and
// TLS 1.3, as Go's client and openssl s_client read it; the connection log's
// failure reason stays the same.
func TestAttackMatrixAlerts(t *testing.T) {
	m, px, _ := startMatrixProxy(t)
	for _, c := range m.Cases {
		if c.Reason == "" {
			continue
		}
		for _, v := range tlsVersions {
			t.Run("go/"+v.name+"/"+c.Name, func(t *testing.T) {
				want := "remote error: tls: " + goAlertText[c.AlertFor(v.v)]
				err := refusedBy(px.addr(t, c.Name), m, c, v.v)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("client error %v; want %q", err, want)
				}
				logged := map[string]string{"msg": "handshake", "listener": c.Name, "tls_version": versionName(v.v), "result": "fail", keyTransportFailure: c.Reason}
				waitFor(t, "log reason "+c.Reason, func() bool { return len(px.log.find(logged)) > 0 })
			})
		}
	}
	t.Run("openssl", func(t *testing.T) { opensslAlerts(t, m, px) })
}

// refusedBy makes one handshake as case c's client with exactly version
// and returns the error it reads: in TLS 1.2 the handshake fails; in TLS
// 1.3 the client's side of the handshake completes before the server
// checks the certificate, and the alert arrives on the first read.
func refusedBy(addr string, m *proxytest.Matrix, c proxytest.Case, version uint16) error {
	pool := x509.NewCertPool()
	pool.AddCert(m.ServerCA.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: proxytest.ServerName, MinVersion: version, MaxVersion: version}
	if c.Client != nil {
		cert := c.Client.TLS()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return err
	}
	return errors.New("the server sent data: the handshake was accepted")
}

// opensslAlerts reads the alert with openssl s_client ("SSL alert number
// N"), for the refusals the issue names, in TLS 1.2 and in TLS 1.3 with
// each TLS 1.3 cipher suite (each has its own record protection) and after
// a HelloRetryRequest.
func opensslAlerts(t *testing.T, m *proxytest.Matrix, px *runningProxy) {
	need(t, "openssl")
	files := map[string][]byte{"server-ca.pem": m.ServerCA.CertPEM()}
	named := []string{"no-cert", "revoked", "expired", "other-ca", "wrong-eku", "san-miss"}
	cases := map[string]proxytest.Case{}
	for _, c := range m.Cases {
		cases[c.Name] = c
		if c.Client != nil {
			files[c.Name+".crt"], files[c.Name+".key"] = c.Client.CertPEM(), c.Client.KeyPEM()
		}
	}
	dir := writeFiles(t, files)
	suites13 := []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
	for _, name := range named {
		c := cases[name]
		runs := [][]string{{"-tls1_2"}}
		for _, s := range suites13 {
			runs = append(runs, []string{"-tls1_3", "-ciphersuites", s})
		}
		// A key share Go does not take: a HelloRetryRequest first.
		runs = append(runs, []string{"-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256", "-groups", "ffdhe2048:P-256", "-msg"})
		for _, r := range runs {
			version := uint16(tls.VersionTLS12)
			if r[0] == "-tls1_3" {
				version = tls.VersionTLS13
			}
			t.Run(strings.Join(append([]string{name}, r...), " "), func(t *testing.T) {
				args := append([]string{"s_client", "-connect", px.addr(t, name), "-servername", proxytest.ServerName,
					"-CAfile", filepath.Join(dir, "server-ca.pem"), "-ign_eof"}, r...)
				if c.Client != nil {
					args = append(args, "-cert", filepath.Join(dir, name+".crt"), "-key", filepath.Join(dir, name+".key"))
				}
				cmd := exec.Command("openssl", args...)
				cmd.Stdin = strings.NewReader("")
				out, _ := cmd.CombinedOutput()
				want := fmt.Sprintf("SSL alert number %d", c.AlertFor(version))
				if !strings.Contains(string(out), want) {
					t.Errorf("openssl %s: no %q in:\n%s", strings.Join(args, " "), want, out)
				}
				if version == tls.VersionTLS13 && !strings.Contains(string(out), "Cipher is "+r[2]) {
					t.Errorf("openssl %s: %s was not negotiated:\n%s", strings.Join(args, " "), r[2], out)
				}
				if slices.Contains(r, "-groups") && strings.Count(string(out), "ServerHello") != 2 {
					t.Errorf("openssl %s: no HelloRetryRequest:\n%s", strings.Join(args, " "), out)
				}
			})
		}
	}
}

// TestRefusalSendsOneAlert reads the raw bytes a refused client receives:
// exactly one alert reaches it, the precise one. Go's own bad_certificate,
// which follows in the code, is dropped; in TLS 1.3 it would otherwise be
// a second record sealed under the same key and nonce. It also pins the
// assumption alert.go builds on: when Go's server verifies a requested
// client certificate, it has written nothing under its application key yet,
// so the alert is record 0.
func TestRefusalSendsOneAlert(t *testing.T) {
	m, px, _ := startMatrixProxy(t)
	var revoked proxytest.Case
	for _, c := range m.Cases {
		if c.Name == "revoked" {
			revoked = c
		}
	}
	addr := px.addr(t, revoked.Name)
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			stream, keys, suite := refusedStream(t, addr, m, revoked, v.v)
			var alerts [][]byte
			if v.v == tls.VersionTLS12 {
				for _, r := range records(t, stream) {
					if r[0] == recordTypeAlert {
						alerts = append(alerts, r[5:])
					}
				}
			} else {
				alerts = openAppRecords(t, stream, keys, suite)
			}
			want := []byte{alertLevelFatal, 44} // certificate_revoked
			if v.v == tls.VersionTLS13 {
				want = append(want, recordTypeAlert) // TLSInnerPlaintext
			}
			if len(alerts) != 1 || !bytes.Equal(alerts[0], want) {
				t.Fatalf("the client received %x; want exactly one alert record %x", alerts, want)
			}
		})
	}
}

// recordingConn keeps every byte the client reads.
type recordingConn struct {
	net.Conn
	got bytes.Buffer
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.got.Write(b[:n])
	return n, err
}

// refusedStream makes one refused handshake as c's client and returns all
// the bytes the server sent until it closed, with the client's key log
// (TLS 1.3 server traffic secret) and the negotiated suite.
func refusedStream(t *testing.T, addr string, m *proxytest.Matrix, c proxytest.Case, version uint16) ([]byte, *alertKeys, uint16) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	rc := &recordingConn{Conn: raw}
	pool := x509.NewCertPool()
	pool.AddCert(m.ServerCA.Cert)
	cert := c.Client.TLS()
	keys := &alertKeys{}
	conn := tls.Client(rc, &tls.Config{
		RootCAs: pool, ServerName: proxytest.ServerName, MinVersion: version, MaxVersion: version,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		KeyLogWriter:         keys,
	})
	err = conn.Handshake()
	if err == nil {
		_, err = conn.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), "remote error") {
		t.Fatalf("client error %v; want a remote alert", err)
	}
	if _, err := io.Copy(&rc.got, raw); err != nil {
		t.Fatalf("reading until the server closes: %v", err)
	}
	return rc.got.Bytes(), keys, conn.ConnectionState().CipherSuite
}

// records splits a stream into TLS records (header included).
func records(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 5 || len(b) < 5+int(binary.BigEndian.Uint16(b[3:5])) {
			t.Fatalf("truncated record in the stream: %x", b)
		}
		n := 5 + int(binary.BigEndian.Uint16(b[3:5]))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// openAppRecords opens every record the server sealed under its TLS 1.3
// application traffic key, and fails if two used the same sequence number.
func openAppRecords(t *testing.T, stream []byte, keys *alertKeys, suite uint16) [][]byte {
	t.Helper()
	h := sha256.New
	keyLen := 16
	switch suite {
	case tls.TLS_AES_256_GCM_SHA384:
		h, keyLen = sha512.New384, 32
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		keyLen = 32
	}
	key, err1 := expandLabel(h, keys.secret[:keys.n], "key", keyLen)
	iv, err2 := expandLabel(h, keys.secret[:keys.n], "iv", 12)
	aead, err3 := newAEAD(suite, key)
	if err := errors.Join(err1, err2, err3); err != nil || keys.n == 0 {
		t.Fatalf("client key log: %d secret bytes, %v", keys.n, err)
	}
	var out [][]byte
	seen := map[uint64]bool{}
	for _, r := range records(t, stream) {
		if r[0] != recordTypeApplicationData {
			continue
		}
		for seq := uint64(0); seq < 8; seq++ {
			nonce := bytes.Clone(iv)
			for i := range 8 {
				nonce[len(nonce)-1-i] ^= byte(seq >> (8 * i))
			}
			if pt, err := aead.Open(nil, nonce, r[5:], r[:5]); err == nil {
				if seen[seq] {
					t.Fatalf("two records sealed with sequence number %d (nonce reuse)", seq)
				}
				seen[seq] = true
				out = append(out, pt)
				break
			}
		}
	}
	return out
}

// TestAlertRecordFallsBack: the alert path sends nothing (Go's generic
// alert goes out, the handshake is refused either way) wherever its
// assumptions do not hold; it keeps only the server traffic secret.
func TestAlertRecordFallsBack(t *testing.T) {
	secret := strings.Repeat("ab", 32)
	random := strings.Repeat("01", 32)
	k := &alertKeys{}
	for _, l := range []string{
		"CLIENT_HANDSHAKE_TRAFFIC_SECRET " + random + " " + secret + "\n",
		"SERVER_HANDSHAKE_TRAFFIC_SECRET " + random + " " + secret + "\n",
		"CLIENT_TRAFFIC_SECRET_0 " + random + " " + secret + "\n",
		"CLIENT_RANDOM " + random + " " + strings.Repeat("cd", 48) + "\n",
	} {
		if n, err := k.Write([]byte(l)); n != len(l) || err != nil || k.n != 0 {
			t.Fatalf("Write(%q) = %d, %v; kept %d bytes, want none", l, n, err, k.n)
		}
	}
	for _, bad := range []string{"SERVER_TRAFFIC_SECRET_0 " + random + " zz\n", "SERVER_TRAFFIC_SECRET_0 nospace\n", "SERVER_TRAFFIC_SECRET_0 " + random + " " + strings.Repeat("ab", 49) + "\n"} {
		if n, err := k.Write([]byte(bad)); n != len(bad) || err != nil || k.n != 0 {
			t.Fatalf("Write(%q) = %d, %v; kept %d bytes, want none", bad, n, err, k.n)
		}
	}
	tls13 := &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	if _, ok := k.record(tls13, mtls.AlertCertificateRevoked); ok {
		t.Error("TLS 1.3 record built without a secret")
	}
	_, _ = k.Write([]byte("SERVER_TRAFFIC_SECRET_0 " + random + " " + secret + "\n"))
	if k.n != 32 {
		t.Fatalf("kept %d secret bytes, want 32", k.n)
	}
	if rec, ok := k.record(tls13, mtls.AlertCertificateRevoked); !ok || len(rec) != 5+3+16 || rec[0] != recordTypeApplicationData {
		t.Errorf("TLS 1.3 record %x, %t; want a 24-byte application_data record", rec, ok)
	}
	for name, cs := range map[string]*tls.ConnectionState{
		"resumed TLS 1.3":                     {Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, DidResume: true},
		"resumed TLS 1.2":                     {Version: tls.VersionTLS12, DidResume: true},
		"unknown suite":                       {Version: tls.VersionTLS13, CipherSuite: 0x13ff},
		"SHA-384 suite with a SHA-256 secret": {Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_256_GCM_SHA384},
	} {
		if rec, ok := k.record(cs, mtls.AlertCertificateRevoked); ok {
			t.Errorf("%s: record %x built; want Go's own alert", name, rec)
		}
	}
	if rec, ok := k.record(&tls.ConnectionState{Version: tls.VersionTLS12}, mtls.AlertCertificateRevoked); !ok || !bytes.Equal(rec, []byte{21, 3, 3, 0, 2, 2, 44}) {
		t.Errorf("TLS 1.2 record %x, %t; want the plaintext alert 1503030002022c", rec, ok)
	}
	k.forget()
	if k.n != 0 || k.secret != [len(k.secret)]byte{} {
		t.Error("forget left the secret in memory")
	}
}
