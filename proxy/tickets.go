package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// Session tickets never cross filter chains. Go encrypts tickets with the
// keys of the tls.Config that GetConfigForClient returns when it sets its
// own, else with the listener config's: one key for every chain of a
// listener, so a ticket a client got on the public chain (no client
// certificate asked) would resume on the partners chain of the same
// address. Envoy gives each filter chain its own TLS context, whose
// SSL_CTX has its own random ticket key, and sets a session ID context
// that hashes the chain's certificates, validation settings and server
// names, which BoringSSL checks before resuming (docs/resources.md).
//
// Each chain here gets its own keys: derived from a random per-process
// secret, the listener and the chain name, and the day. A new key
// encrypts every 24 hours and a key decrypts for 7 days, as Go rotates
// its automatic keys; an update that rebuilds a chain keeps its keys, so
// resumption survives unrelated config pushes.
const (
	ticketKeyPeriod = 24 * time.Hour
	ticketKeyCount  = 7
)

// ticketKeys derives per-chain session ticket keys. The zero value is
// ready to use.
type ticketKeys struct {
	once   sync.Once
	secret [32]byte
	cache  sync.Map // listener "\x00" chain -> *chainTicketKeys
}

type chainTicketKeys struct {
	epoch int64
	keys  [][32]byte // current first
}

// keys returns the ticket keys of chain of listener at now, current first.
func (t *ticketKeys) keys(listener, chain string, now time.Time) [][32]byte {
	t.once.Do(func() {
		if _, err := rand.Read(t.secret[:]); err != nil {
			panic("proxy: no randomness for session ticket keys: " + err.Error()) // crypto/rand never fails on supported systems
		}
	})
	epoch := now.Unix() / int64(ticketKeyPeriod/time.Second)
	id := listener + "\x00" + chain
	if c, ok := t.cache.Load(id); ok && c.(*chainTicketKeys).epoch == epoch {
		return c.(*chainTicketKeys).keys
	}
	c := &chainTicketKeys{epoch: epoch, keys: make([][32]byte, ticketKeyCount)}
	for i := range c.keys {
		mac := hmac.New(sha256.New, t.secret[:])
		mac.Write([]byte("certplane session ticket key v1\x00"))
		mac.Write([]byte(id))
		mac.Write(binary.BigEndian.AppendUint64([]byte{0}, uint64(epoch-int64(i))))
		copy(c.keys[i][:], mac.Sum(nil))
	}
	t.cache.Store(id, c)
	return c.keys
}
