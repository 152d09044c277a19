package proxy

import (
	"crypto/tls"
	"net/http"
	"testing"
	"time"
)

// TestResumedSessionIsRechecked shows that a client resuming a TLS session
// is checked again: verification lives in VerifyConnection, which Go runs on
// resumed handshakes too, so a session ticket issued before a revocation
// does not let the revoked client back in.
func TestResumedSessionIsRechecked(t *testing.T) {
	e := newGuideEnv(t, nil)
	alice := e.alice.TLS()
	cache := tls.NewLRUClientSessionCache(8)
	c := httpsClient(e.serverCA.Cert, &alice, false)
	tr := c.Transport.(*http.Transport)
	tr.TLSClientConfig.ClientSessionCache = cache

	resumed := false
	for i := 0; i < 5 && !resumed; i++ { // the ticket arrives after the first handshake
		resp, err := c.Get(e.url("/"))
		if err != nil {
			t.Fatalf("alice before revocation: %v", err)
		}
		resp.Body.Close()
		resumed = resp.TLS.DidResume
	}
	if !resumed {
		t.Fatal("the client never resumed a session; the test would prove nothing")
	}

	e.clientCA.Revoke(e.alice)
	e.publish(t, e.clientCA.CRLPEM())
	// Keep connecting (each request resumes the session) until a resumed
	// handshake is refused as revoked. A connection that raced the update
	// may still be admitted and then closed by the recheck; that is the
	// other path and not what this test is about.
	refused := func() bool {
		return len(e.px.log.find(map[string]string{"event": "handshake", "peer_subject": "CN=alice", "result": "fail", "transport_failure": "revoked", "resumed": "true"})) > 0
	}
	deadline := time.Now().Add(10 * time.Second)
	for !refused() {
		if time.Now().After(deadline) {
			t.Fatalf("no resumed handshake of alice was refused as revoked within 10s:\n%v", e.px.log.find(map[string]string{"peer_subject": "CN=alice"}))
		}
		if resp, err := c.Get(e.url("/")); err == nil {
			resp.Body.Close()
		}
	}
	resp, err := c.Get(e.url("/"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("alice was served after a resumed handshake was refused")
	}
}
