package admin

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPageEmbedsStatus checks the page: the /status document embedded
// (escaped so that it cannot close its <script>), the security headers, the
// assets served from the binary, and nothing fetched from elsewhere.
func TestPageEmbedsStatus(t *testing.T) {
	hostile := "CN=</script><script>alert(1)</script>"
	base := serve(t, Options{Status: func() any {
		return Status{ControlPlane: &ControlPlane{Ready: true, Listeners: []Listener{{Name: "https", Address: "127.0.0.1:8443",
			Certificates: []Certificate{{Subject: hostile}}}}}}
	}})
	code, body, hdr := get(t, base+"/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	for k, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": pageCSP,
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
	} {
		if got := hdr.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	m := regexp.MustCompile(`(?s)<script type="application/json" id="initial-status">(.*?)</script>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no embedded status in:\n%s", body)
	}
	var doc Status
	if err := json.Unmarshal([]byte(m[1]), &doc); err != nil {
		t.Fatalf("embedded status is not JSON: %v\n%s", err, m[1])
	}
	if got := doc.ControlPlane.Listeners[0].Certificates[0].Subject; got != hostile {
		t.Errorf("embedded subject = %q, want %q", got, hostile)
	}
	if strings.Contains(body, "<script>alert(1)") {
		t.Error("the embedded status closed its <script> element")
	}
	if strings.Contains(body, "{{STATUS}}") {
		t.Error("placeholder left in the page")
	}
	for _, a := range []struct{ path, ctype, contains string }{
		{"/assets/page.css", "text/css; charset=utf-8", ".expiry.amber .fill"},
		{"/assets/page.js", "text/javascript; charset=utf-8", "fetch(\"/status\""},
	} {
		code, body, hdr := get(t, base+a.path)
		if code != http.StatusOK || hdr.Get("Content-Type") != a.ctype || !strings.Contains(body, a.contains) {
			t.Errorf("GET %s = %d %q, contains %q: %v", a.path, code, hdr.Get("Content-Type"), a.contains, strings.Contains(body, a.contains))
		}
		if hdr.Get("Content-Security-Policy") != pageCSP {
			t.Errorf("GET %s: no CSP", a.path)
		}
	}
	for _, p := range []string{"/assets/", "/assets/index.html", "/nope"} {
		if code, _, _ := get(t, base+p); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
	// Self-contained: no URL with a scheme and host in any asset.
	ext := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import`)
	for _, name := range []string{"assets/index.html", "assets/page.css", "assets/page.js"} {
		b, err := assets.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if loc := ext.FindIndex(b); loc != nil {
			t.Errorf("%s fetches from elsewhere: %q", name, b[loc[0]:min(len(b), loc[1]+40)])
		}
	}
}

// TestPageWithoutStatus serves an empty document rather than failing.
func TestPageWithoutStatus(t *testing.T) {
	base := serve(t, Options{})
	code, body, _ := get(t, base+"/")
	if code != http.StatusOK || !strings.Contains(body, `<script type="application/json" id="initial-status">{}</script>`) {
		t.Fatalf("GET / = %d:\n%s", code, body)
	}
}

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
