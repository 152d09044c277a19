package admin

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/certplane/certplane/status"
)

// TestPageEmbedsStatus checks the page: the /status document embedded
// (escaped so that it cannot close its <script>), the security headers, the
// assets served from the binary, and nothing fetched from elsewhere.
func TestPageEmbedsStatus(t *testing.T) {
	hostile := "CN=</script><script>alert(1)</script>"
	base := serve(t, Options{Status: func() any {
		return status.Status{ControlPlane: &status.ControlPlane{Ready: true, Listeners: []status.Listener{{Name: "https", Address: "127.0.0.1:8443",
			Certificates: []status.Certificate{{Subject: hostile}}}}}}
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
	var doc status.Status
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
