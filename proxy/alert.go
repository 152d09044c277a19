package proxy

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/certplane/certplane/proxy/mtls"
)

// Precise refusal alerts.
//
// Go's crypto/tls answers every error of VerifyConnection with the alert
// bad_certificate; Envoy sends the alert of the defect (certificate_revoked,
// certificate_expired, unknown_ca...: mtls.Failure.AlertFor). Go offers no
// hook to choose it, so the proxy writes that alert record itself, on the
// raw connection, from VerifyConnection, and then drops what Go writes after
// it (its own bad_certificate): the client reads one alert, the precise one.
//
// Where the record stands in the handshake, per Go's server (Go 1.26,
// handshake_server.go and handshake_server_tls13.go):
//   - TLS 1.2: VerifyConnection runs after the client's Certificate and
//     before the server's ChangeCipherSpec, so the alert is a plaintext
//     record.
//   - TLS 1.3: the server switched its write side to the server application
//     traffic secret right after its Finished, and when it requested a
//     client certificate it writes nothing under that key (session tickets
//     wait for the client's Finished) before VerifyConnection: the alert is
//     the first record under that key, sequence number 0. The secret comes
//     from this connection's own tls.Config.KeyLogWriter (alertKeys); it is
//     kept in memory only for the handshake, never logged.
//
// Only a full handshake that requested a client certificate is armed. A
// resumed session (Go re-verifies it in VerifyConnection, but no
// certificate is requested and, in TLS 1.3, a session ticket may already be
// written under the key) keeps Go's bad_certificate. Whatever happens here,
// the handshake is refused: VerifyConnection returns the failure in every
// case.

// TLS record layer values (RFC 8446 sections 5.1 and 6).
const (
	recordTypeAlert           = 21
	recordTypeApplicationData = 23
	alertLevelFatal           = 2
	serverTrafficSecretLabel  = "SERVER_TRAFFIC_SECRET_0 "
)

// alertKeys receives the key log of one connection's handshake and keeps
// only the TLS 1.3 server application traffic secret.
type alertKeys struct {
	secret [sha512.Size384]byte
	n      int // length of secret; 0 when none is held
}

// Write takes one NSS key log line ("LABEL <client random> <secret>\n").
// It never fails: an error would make Go abort the handshake.
func (k *alertKeys) Write(line []byte) (int, error) {
	rest, ok := bytes.CutPrefix(line, []byte(serverTrafficSecretLabel))
	if !ok {
		return len(line), nil
	}
	k.forget()
	_, secretHex, ok := bytes.Cut(bytes.TrimSuffix(rest, []byte("\n")), []byte(" "))
	if !ok || len(secretHex) > 2*len(k.secret) {
		return len(line), nil
	}
	if n, err := hex.Decode(k.secret[:], secretHex); err == nil {
		k.n = n
	} else {
		k.forget()
	}
	return len(line), nil
}

// forget wipes the secret.
func (k *alertKeys) forget() {
	clear(k.secret[:])
	k.n = 0
}

// record returns the record that carries fatal alert a when
// VerifyConnection refuses the handshake cs, or false when the handshake is
// not armed (see above) or the record cannot be built.
func (k *alertKeys) record(cs *tls.ConnectionState, a mtls.Alert) ([]byte, bool) {
	switch {
	case cs.DidResume:
		return nil, false
	case cs.Version == tls.VersionTLS13:
		return k.sealed(cs.CipherSuite, a)
	case cs.Version >= tls.VersionTLS10:
		return []byte{recordTypeAlert, byte(cs.Version >> 8), byte(cs.Version), 0, 2, alertLevelFatal, byte(a)}, true
	}
	return nil, false
}

// sealed protects alert a as the first TLS 1.3 record under the server
// application traffic secret (RFC 8446 sections 5.2, 5.3 and 7.3).
func (k *alertKeys) sealed(suite uint16, a mtls.Alert) ([]byte, bool) {
	var h func() hash.Hash
	keyLen := 16
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		h = sha256.New
	case tls.TLS_AES_256_GCM_SHA384:
		h, keyLen = sha512.New384, 32
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		h, keyLen = sha256.New, chacha20poly1305.KeySize
	default:
		return nil, false
	}
	if k.n == 0 || k.n != h().Size() {
		return nil, false
	}
	secret := k.secret[:k.n]
	key, err := expandLabel(h, secret, "key", keyLen)
	if err != nil {
		return nil, false
	}
	defer clear(key)
	iv, err := expandLabel(h, secret, "iv", 12)
	if err != nil {
		return nil, false
	}
	aead, err := newAEAD(suite, key)
	if err != nil {
		return nil, false // e.g. GODEBUG=fips140=only refuses GCM with our nonce
	}
	// TLSInnerPlaintext: the alert, then its content type, no padding.
	inner := []byte{alertLevelFatal, byte(a), recordTypeAlert}
	hdr := [5]byte{recordTypeApplicationData, 3, 3}
	binary.BigEndian.PutUint16(hdr[3:], uint16(len(inner)+aead.Overhead()))
	// Sequence number 0: the nonce is the iv itself.
	out := append(make([]byte, 0, len(hdr)+len(inner)+aead.Overhead()), hdr[:]...)
	return aead.Seal(out, iv, inner, hdr[:]), true
}

func newAEAD(suite uint16, key []byte) (cipher.AEAD, error) {
	if suite == tls.TLS_CHACHA20_POLY1305_SHA256 {
		return chacha20poly1305.New(key)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// expandLabel is HKDF-Expand-Label with an empty context (RFC 8446
// section 7.1).
func expandLabel(h func() hash.Hash, secret []byte, label string, n int) ([]byte, error) {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, 0)
	return hkdf.Expand(h, secret, string(info), n)
}

// refuse sends alert a for the refused handshake cs on the raw connection,
// ahead of Go's generic bad_certificate, which Write then drops. When the
// handshake is not armed nothing is sent and Go's alert goes out as before.
func (c *trackedConn) refuse(cs *tls.ConnectionState, a mtls.Alert) {
	rec, ok := c.keys.record(cs, a)
	if !ok {
		return
	}
	// Set before writing: even a failed write must keep Go's alert, which
	// would reuse the TLS 1.3 record nonce, off the wire.
	c.alerted.Store(true)
	n, _ := c.Conn.Write(rec)
	c.tx.Add(int64(n))
}
