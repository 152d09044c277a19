package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// fingerprint is the hex SHA-256 of parts, each length-prefixed so that
// no two lists of parts hash alike.
func fingerprint(parts ...[]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		l := uint64(len(p))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// valueBytes is the canonical encoding of a model value for a fingerprint:
// its exported fields as JSON (the model holds only plain data).
func valueBytes(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("config: model value not encodable: " + err.Error()) // a model type gained a func or chan field
	}
	return b
}

// fingerprint sets the fingerprints of the backends and listeners, each
// covering what it depends on (key pairs and trust stores carry theirs
// from parsing).
func (m *Model) fingerprint() {
	fpTrust := func(name string) []byte {
		if ts := m.Trust[name]; ts != nil {
			return []byte(ts.Fingerprint)
		}
		return nil
	}
	fpKeyPair := func(kps map[string]*KeyPair, name string) []byte {
		if kp := kps[name]; kp != nil {
			return []byte(kp.Fingerprint)
		}
		return nil
	}
	for _, b := range m.Backends {
		c := *b
		c.Fingerprint = ""
		parts := [][]byte{valueBytes(c)}
		if b.TLS != nil {
			parts = append(parts, fpTrust(b.TLS.TrustStore), fpKeyPair(m.Clients, b.TLS.Certificate))
		}
		b.Fingerprint = fingerprint(parts...)
	}
	for _, l := range m.Listeners {
		c := *l
		c.Fingerprint = ""
		parts := [][]byte{valueBytes(c), fpTrust(l.ClientAuth.TrustStore)}
		for _, name := range l.Certificates {
			parts = append(parts, fpKeyPair(m.Servers, name))
		}
		for _, r := range l.Routes {
			if b := m.Backends[r.Backend]; b != nil {
				parts = append(parts, []byte(b.Fingerprint))
			}
		}
		l.Fingerprint = fingerprint(parts...)
	}
}
