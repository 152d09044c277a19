package status

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

func TestExpiryState(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{now.Add(31 * 24 * time.Hour), ExpiryOK},
		{now.Add(DefaultExpiryWarning), ExpiryOK},
		{now.Add(DefaultExpiryWarning - time.Second), ExpiryExpiring},
		{now.Add(time.Second), ExpiryExpiring},
		{now, ExpiryExpired},
		{now.Add(-time.Hour), ExpiryExpired},
	} {
		if got := ExpiryState(c.at, now, DefaultExpiryWarning); got != c.want {
			t.Errorf("ExpiryState(now%+v) = %s, want %s", c.at.Sub(now), got, c.want)
		}
	}
}

// TestExpiryWatchLogsOncePerCrossing: one line when an item comes within the
// threshold, one when it expires, one when it is renewed; nothing on the
// checks in between, however many.
func TestExpiryWatchLogsOncePerCrossing(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	w := NewExpiryWatch(10*24*time.Hour, log)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter := t0.Add(15 * 24 * time.Hour)
	cert := func(at time.Time) []Expiry {
		return []Expiry{
			{Kind: KindServer, Name: "server/default", Subject: "CN=localhost", File: "certs/server/default/tls.crt", At: at},
			{Kind: KindCA, Name: "trust/clients", Subject: "CN=CA", At: t0.Add(3650 * 24 * time.Hour)},
		}
	}
	step := func(now time.Time, items []Expiry, want string) {
		t.Helper()
		buf.Reset()
		for range 3 { // resyncs: the same state logs once
			w.Check(now, items)
		}
		if got := buf.String(); got != want {
			t.Errorf("at %s:\n got: %q\nwant: %q", now.Format(time.DateOnly), got, want)
		}
	}
	step(t0, cert(notAfter), "")
	step(t0.Add(4*24*time.Hour), cert(notAfter), "")
	step(t0.Add(5*24*time.Hour+time.Hour), cert(notAfter),
		`level=WARN msg="server certificate expires soon" kind=server name=server/default subject="CN=localhost" expires=2026-01-16T00:00:00Z file=certs/server/default/tls.crt left=9d threshold=240h0m0s`+"\n")
	step(t0.Add(15*24*time.Hour), cert(notAfter),
		`level=ERROR msg="server certificate has expired: clients refuse it" kind=server name=server/default subject="CN=localhost" expires=2026-01-16T00:00:00Z file=certs/server/default/tls.crt`+"\n")
	renewed := t0.Add(400 * 24 * time.Hour)
	step(t0.Add(15*24*time.Hour), cert(renewed),
		`level=INFO msg="renewed: no longer within the expiry warning threshold" kind=server name=server/default subject="CN=localhost" expires=2027-02-05T00:00:00Z file=certs/server/default/tls.crt`+"\n")
	// A CRL first seen already near its nextUpdate warns at once.
	crl := []Expiry{{Kind: KindCRL, Name: "trust/clients", Subject: "CN=CA", At: t0.Add(20 * 24 * time.Hour)}}
	step(t0.Add(15*24*time.Hour), crl,
		`level=WARN msg="CRL nextUpdate is near: publish a fresh CRL before then, or clients of its CA are refused" kind=crl name=trust/clients subject="CN=CA" expires=2026-01-21T00:00:00Z left=5d threshold=240h0m0s`+"\n")
}

// TestExpiries: one list for both planes. Server and client key pairs,
// every CA and every CRL with a nextUpdate, under the Secret name that
// carries them; items with one key merged, keeping the earliest; soonest
// first.
func TestExpiries(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	ca := Certificate{Subject: "CN=CA", NotAfter: t0.Add(300 * day)}
	store := &TrustStore{Name: "clients",
		CAs:  []Certificate{ca, {Subject: "CN=CA", NotAfter: t0.Add(200 * day)}},          // one subject twice: the earliest wins
		CRLs: []CRL{{Issuer: "CN=CA", NextUpdate: t0.Add(7 * day)}, {Issuer: "CN=Other"}}, // no nextUpdate: never stale
	}
	got := Expiries(Inventory{
		Servers: []Certificate{{Name: "server/default", Subject: "CN=localhost", File: "tls.crt", NotAfter: t0.Add(90 * day)},
			{Name: "server/default", Subject: "CN=localhost", File: "tls.crt", NotAfter: t0.Add(90 * day)}},
		Clients: []Certificate{{Name: "client/upstream", Subject: "CN=proxy", NotAfter: t0.Add(30 * day)}},
		Stores:  map[string]*TrustStore{"trust/clients": store},
	})
	want := []Expiry{
		{Kind: KindCRL, Name: "trust/clients", Subject: "CN=CA", At: t0.Add(7 * day)},
		{Kind: KindClient, Name: "client/upstream", Subject: "CN=proxy", At: t0.Add(30 * day)},
		{Kind: KindServer, Name: "server/default", Subject: "CN=localhost", File: "tls.crt", At: t0.Add(90 * day)},
		{Kind: KindCA, Name: "trust/clients", Subject: "CN=CA", At: t0.Add(200 * day)},
	}
	if len(got) != len(want) {
		t.Fatalf("Expiries = %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("item %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	exp := Expiring(got, t0.Add(10*day), 30*day)
	if len(exp) != 2 || exp[0].State != ExpiryExpired || exp[1].State != ExpiryExpiring || got[0].State != "" {
		t.Errorf("Expiring = %+v (and must not classify its input in place)", exp)
	}
}
