package ocspcheck_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"golang.org/x/crypto/ocsp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/proxy/ocspcheck"
)

// responder answers every request with status for the serial asked,
// signed by signer (embedded when it is not the CA).
func responder(t *testing.T, ca *pkitest.CA, signer *x509.Certificate, key crypto.Signer, status int, nextUpdate time.Duration, hits *atomic.Int64) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now().Truncate(time.Second)
		tmpl := ocsp.Response{Status: status, SerialNumber: req.SerialNumber, ThisUpdate: now.Add(-time.Minute), RevokedAt: now.Add(-time.Hour)}
		if nextUpdate > 0 {
			tmpl.NextUpdate = now.Add(nextUpdate)
		}
		if signer != ca.Cert {
			tmpl.Certificate = signer
		}
		der, err := ocsp.CreateResponse(ca.Cert, signer, tmpl, key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(der)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCheck(t *testing.T) {
	ca := pkitest.NewCA(t, "Partner CA")
	alice := ca.Client("alice")
	delegated := ca.Client("ocsp-responder", pkitest.EKU(x509.ExtKeyUsageOCSPSigning))
	notDelegated := ca.Client("not-a-responder")
	other := pkitest.NewCA(t, "Other CA")
	foreign := other.Client("ocsp-foreign", pkitest.EKU(x509.ExtKeyUsageOCSPSigning))
	for _, tc := range []struct {
		name     string
		signer   *x509.Certificate
		key      crypto.Signer
		status   int
		want     ocspcheck.Result
		errPart  string
		nextUpd  time.Duration
		wantHits int64 // after two checks
	}{
		{"good by the CA, cached", ca.Cert, ca.Key, ocsp.Good, ocspcheck.Good, "", time.Hour, 1},
		{"good without nextUpdate, not cached", ca.Cert, ca.Key, ocsp.Good, ocspcheck.Good, "", 0, 2},
		{"revoked", ca.Cert, ca.Key, ocsp.Revoked, ocspcheck.Revoked, "revoked at", time.Hour, 1},
		{"unknown", ca.Cert, ca.Key, ocsp.Unknown, ocspcheck.Unknown, "status unknown", time.Hour, 1},
		{"delegated responder", delegated.Cert, delegated.Key, ocsp.Good, ocspcheck.Good, "", time.Hour, 1},
		{"responder without OCSPSigning", notDelegated.Cert, notDelegated.Key, ocsp.Good, ocspcheck.Unavailable, "lacks id-kp-OCSPSigning", time.Hour, 2},
		{"responder of another CA", foreign.Cert, foreign.Key, ocsp.Good, ocspcheck.Unavailable, "is not issued by the CA", time.Hour, 2},
		{"signed by another CA", other.Cert, other.Key, ocsp.Good, ocspcheck.Unavailable, "is not issued by the CA", time.Hour, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int64
			url := responder(t, ca, tc.signer, tc.key, tc.status, tc.nextUpd, &hits)
			c := ocspcheck.NewChecker(nil)
			p := &ocspcheck.Policy{Mode: ocspcheck.Require, URL: url, Timeout: 5 * time.Second}
			for range 2 {
				got, err := c.Check(context.Background(), p, alice.Cert, ca.Cert)
				if got != tc.want {
					t.Fatalf("result %s (%v), want %s", got, err, tc.want)
				}
				if tc.errPart != "" && (err == nil || !strings.Contains(err.Error(), tc.errPart)) {
					t.Fatalf("err %v, want %q", err, tc.errPart)
				}
			}
			if hits.Load() != tc.wantHits {
				t.Fatalf("the responder was asked %d times, want %d", hits.Load(), tc.wantHits)
			}
		})
	}
}

// TestCheckBoundedAndAIA: a responder that never answers costs at most the
// timeout; without url the certificate's AIA is asked; without either the
// result is unavailable.
func TestCheckBoundedAndAIA(t *testing.T) {
	ca := pkitest.NewCA(t, "Partner CA")
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	t.Cleanup(func() { close(block); slow.Close() })
	alice := ca.Client("alice", pkitest.OCSPURL(slow.URL))
	c := ocspcheck.NewChecker(nil)
	start := time.Now()
	got, err := c.Check(context.Background(), &ocspcheck.Policy{Mode: ocspcheck.Require, Timeout: 200 * time.Millisecond}, alice.Cert, ca.Cert)
	if got != ocspcheck.Unavailable || err == nil || !strings.Contains(err.Error(), slow.URL) {
		t.Fatalf("%s %v: want unavailable from the AIA responder", got, err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("the lookup outlived its timeout by far: %v", time.Since(start))
	}
	bob := ca.Client("bob")
	if got, err := c.Check(context.Background(), &ocspcheck.Policy{Mode: ocspcheck.Require, Timeout: time.Second}, bob.Cert, ca.Cert); got != ocspcheck.Unavailable || !strings.Contains(err.Error(), "names no http(s) OCSP responder") {
		t.Fatalf("%s %v", got, err)
	}
}

func TestParseMetadata(t *testing.T) {
	md := func(fields map[string]any) *corev3.Metadata {
		s, err := structpb.NewStruct(fields)
		if err != nil {
			t.Fatal(err)
		}
		return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{ocspcheck.MetadataKey: s}}
	}
	p, err := ocspcheck.ParseMetadata(md(map[string]any{"mode": "require", "timeout_ms": 1500, "url": "http://ocsp.example"}))
	if err != nil || p.Mode != ocspcheck.Require || p.Timeout != 1500*time.Millisecond || p.URL != "http://ocsp.example" {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []struct {
		md   *corev3.Metadata
		want string
	}{
		{md(map[string]any{"mode": "off", "timeout_ms": 1}), `mode "off"`},
		{md(map[string]any{"mode": "require"}), "timeout_ms is required"},
		{md(map[string]any{"mode": "require", "timeout_ms": 1, "cache": true}), `field "cache" is not implemented`},
		{&corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.lb": {}}}, `filter_metadata "envoy.lb" is not implemented`},
	} {
		if _, err := ocspcheck.ParseMetadata(bad.md); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("err %v, want %q", err, bad.want)
		}
	}
}
