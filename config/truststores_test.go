package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki/pkitest"
)

// problemTexts joins the problems (or warnings) of m.
func problemTexts(ps []config.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.Error() + "\n")
	}
	return b.String()
}

func TestTrustStoresSection(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       string // a problem text part; "" for none
		fetch      *config.CRLFetch
	}{
		{"defaults", "trust_stores:\n  - name: clients\n    crl_fetch: {}\n", "",
			&config.CRLFetch{Store: "clients", Interval: time.Hour, Timeout: 5 * time.Second}},
		{"set", "trust_stores:\n  - name: clients\n    crl_fetch: {interval: 30m, timeout: 2s, urls: [\"https://pki.example/a.crl\"]}\n", "",
			&config.CRLFetch{Store: "clients", Interval: 30 * time.Minute, Timeout: 2 * time.Second, URLs: []string{"https://pki.example/a.crl"}}},
		{"no fetch", "trust_stores:\n  - name: clients\n", "", nil},
		{"bad interval", "trust_stores:\n  - name: clients\n    crl_fetch: {interval: soon}\n", `ts.yaml:3: trust_stores[0] "clients": crl_fetch: interval "soon": want a positive duration`, nil},
		{"short interval", "trust_stores:\n  - name: clients\n    crl_fetch: {interval: 10s}\n", "interval 10s is below 1m", nil},
		{"ldap url", "trust_stores:\n  - name: clients\n    crl_fetch:\n      urls: [\"ldap://pki.example/cn=ca\"]\n", `ts.yaml:4: trust_stores[0] "clients": crl_fetch: urls[0] "ldap://pki.example/cn=ca": want an http:// or https:// URL`, nil},
		{"credentials", "trust_stores:\n  - name: clients\n    crl_fetch: {urls: [\"http://u:p@pki.example/a.crl\"]}\n", "credentials in the URL are refused", nil},
		{"no such store", "trust_stores:\n  - name: nowhere\n    crl_fetch: {}\n", `ts.yaml:3: trust_stores: "nowhere": no trust store certs/trust/nowhere`, nil},
		{"unknown key", "trust_stores:\n  - name: clients\n    crl_fetch: {every: 1h}\n", `ts.yaml:3: unknown key "every" in crl_fetch (known keys: interval, timeout, urls)`, nil},
		{"twice", "trust_stores:\n  - name: clients\n    crl_fetch: {}\n  - name: clients\n    crl_fetch: {}\n", `crl_fetch is already set at`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.tr.WriteConfig("ts.yaml", tc.yaml)
			m := f.load()
			got := problemTexts(m.Problems)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Fatalf("problems:\n%s\nwant one with %q", got, tc.want)
			}
			if len(m.Listeners) != 2 {
				t.Errorf("a trust_stores defect blocked listeners: %d served", len(m.Listeners))
			}
			if tc.fetch == nil {
				if tc.want == "" && len(m.CRLFetch) != 0 {
					t.Fatalf("CRLFetch %+v, want none", m.CRLFetch)
				}
				return
			}
			if len(m.CRLFetch) != 1 {
				t.Fatalf("CRLFetch %+v, want one", m.CRLFetch)
			}
			g := *m.CRLFetch[0]
			g.File, g.Line = "", 0
			if g.Store != tc.fetch.Store || g.Interval != tc.fetch.Interval || g.Timeout != tc.fetch.Timeout || strings.Join(g.URLs, " ") != strings.Join(tc.fetch.URLs, " ") {
				t.Fatalf("CRLFetch %+v, want %+v", g, *tc.fetch)
			}
		})
	}
}

// TestFetchedCRLsAreCRLFiles: a CRL in Loader.FetchedDir/<store>/ is one
// more CRL file of the store: served when newer, and an older dropped file
// is refused as older (never the other way round).
func TestFetchedCRLsAreCRLFiles(t *testing.T) {
	f := newFixture(t)
	fetched := filepath.Join(t.TempDir(), "fetched-crl")
	dir := filepath.Join(fetched, "clients")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	revoked := f.inter.Client("revoked")
	if err := os.WriteFile(filepath.Join(dir, "inter.crl"), f.inter.CRL(pkitest.CRLNumber(50), pkitest.CRLRevoked(revoked)), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := config.Loader{FetchedDir: fetched}.Load(f.tr.Certs, f.tr.Config)
	if err != nil {
		t.Fatal(err)
	}
	ts := m.Trust["clients"]
	found := false
	for _, c := range ts.CRLs {
		found = found || (c.Number != nil && c.Number.Int64() == 50)
	}
	if !found {
		t.Fatalf("the fetched CRL is not served: %+v", ts.CRLs)
	}
	if got := problemTexts(m.Problems); !strings.Contains(got, "inter.crl") || !strings.Contains(got, "older than") {
		t.Fatalf("the dropped, older CRL of the same CA is not refused as older:\n%s", got)
	}
}

// TestOCSPRequireRefusedForEnvoy: Envoy checks no client OCSP, so a
// listener with ocsp mode require is not served unless only certplane
// proxies consume (ProxyOnly); best_effort is served with a warning.
func TestOCSPRequireRefusedForEnvoy(t *testing.T) {
	f := newFixture(t)
	f.editWeb("      trust_store: clients\n", "      trust_store: clients\n      ocsp: {mode: require}\n")
	m := f.load()
	if got := problemTexts(m.Problems); !strings.Contains(got, `listener "web": client_auth: ocsp mode require is enforced only by the bundled proxy`) {
		t.Fatalf("problems:\n%s", got)
	}
	for _, l := range m.Listeners {
		if l.Name == "web" {
			t.Fatal("listener web served to Envoy with ocsp require: it would not check OCSP (fail open)")
		}
	}
	m, err := config.Loader{ProxyOnly: true}.Load(f.tr.Certs, f.tr.Config)
	if err != nil {
		t.Fatal(err)
	}
	var web *config.Listener
	for _, l := range m.Listeners {
		if l.Name == "web" {
			web = l
		}
	}
	if web == nil || web.ClientAuth.OCSP.Mode != config.OCSPRequire || web.ClientAuth.OCSP.Timeout != config.DefaultOCSPTimeout {
		t.Fatalf("ProxyOnly: web %+v, problems:\n%s", web, problemTexts(m.Problems))
	}

	f.editWeb("      trust_store: clients\n", "      trust_store: clients\n      ocsp: {mode: best_effort}\n")
	m = f.load()
	if got := problemTexts(m.Warnings); !strings.Contains(got, "ocsp mode best_effort is enforced only by the bundled proxy") {
		t.Fatalf("warnings:\n%s", got)
	}
}

func TestOCSPConfigErrors(t *testing.T) {
	for _, tc := range []struct{ ocsp, want string }{
		{"{mode: always}", `web.yaml:8: listener "web": client_auth: ocsp: mode "always": want off, best_effort or require`},
		{"{mode: require, url: \"ftp://x\"}", `client_auth: ocsp: url "ftp://x": want an http:// or https:// URL`},
		{"{mode: require, timeout: 1m}", `client_auth: ocsp: timeout "1m": want a positive duration up to 30s`},
		{"{mode: require, cache: 1h}", `unknown key "cache" in client_auth.ocsp (known keys: mode, url, timeout)`},
	} {
		f := newFixture(t)
		f.editWeb("      trust_store: clients\n", "      trust_store: clients\n      ocsp: "+tc.ocsp+"\n")
		m, err := config.Loader{ProxyOnly: true}.Load(f.tr.Certs, f.tr.Config)
		if err != nil {
			t.Fatal(err)
		}
		if got := problemTexts(m.Problems); !strings.Contains(got, tc.want) {
			t.Errorf("ocsp %s: problems:\n%s\nwant %q", tc.ocsp, got, tc.want)
		}
	}
}
