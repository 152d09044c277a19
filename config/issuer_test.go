package config_test

import (
	"strings"
	"testing"

	"github.com/certplane/certplane/config"
)

// TestIssuerNeedsProxyDataPlane: no Envoy input reads the client
// certificate's issuer, so a listener with an issuer matcher (in subjects
// or in a route's allow) is refused, with its line, unless only certplane
// proxies consume (ProxyOnly), which load it as written; the other
// listener is served either way.
func TestIssuerNeedsProxyDataPlane(t *testing.T) {
	for _, tc := range []struct{ name, old, new, want string }{
		{"allow", "      - {path_prefix: /, backend: app}\n",
			"      - path_prefix: /\n        backend: app\n        allow:\n          - {type: uri, exact: x}\n          - {type: issuer, contains: \"CN=Test Issuing CA\"}\n",
			`web.yaml:13: listener "web": routes[0]: allow[1]: type issuer is enforced only by the bundled proxy`},
		{"subjects", "      trust_store: clients\n",
			"      trust_store: clients\n      subjects: [{type: issuer, exact: \"CN=Test Issuing CA\"}]\n",
			`web.yaml:8: listener "web": client_auth: subjects[0]: type issuer is enforced only by the bundled proxy`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.editWeb(tc.old, tc.new)
			m := f.load()
			got := problemTexts(m.Problems)
			if !strings.Contains(got, tc.want) || !strings.Contains(got, "give serve --data-plane proxy") {
				t.Fatalf("problems:\n%s\nwant %q", got, tc.want)
			}
			if served(m, "web") != nil {
				t.Fatal("listener web served to Envoy with an issuer matcher Envoy cannot enforce")
			}
			if served(m, "other") == nil {
				t.Fatal("listener other is not served")
			}
			m, err := config.Loader{ProxyOnly: true}.Load(f.tr.Certs, f.tr.Config)
			if err != nil {
				t.Fatal(err)
			}
			web := served(m, "web")
			if web == nil || len(m.Problems) != 0 {
				t.Fatalf("ProxyOnly: web %v, problems:\n%s", web, problemTexts(m.Problems))
			}
			ms := web.ClientAuth.Subjects
			if tc.name == "allow" {
				ms = web.Routes[0].Allow
			}
			if last := ms[len(ms)-1]; last.Type != config.IdentityIssuer || last.Exact+last.Contains != "CN=Test Issuing CA" {
				t.Fatalf("ProxyOnly: matchers %+v", ms)
			}
		})
	}
}

func served(m *config.Model, name string) *config.Listener {
	for _, l := range m.Listeners {
		if l.Name == name {
			return l
		}
	}
	return nil
}
