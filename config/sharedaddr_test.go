package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki/pkitest"
)

// issue13YAML is issue 13's example, as written there (plus the backends).
const issue13YAML = `listeners:
  - name: partners
    address: 0.0.0.0:8443
    server_names: [partners.example.com, "*.partners.example.com"]   # exact or one-label wildcard
    certificates: [partners]
    client_auth: {mode: verify, trust_store: partners}
    routes: [{path_prefix: /, backend: app}]
  - name: public                      # no server_names: the default for other or absent SNI
    address: 0.0.0.0:8443
    certificates: [www]
    client_auth: {mode: off}
    routes: [{path_prefix: /, backend: site}]
backends:
  - {name: app, endpoints: ["10.0.0.1:8080"]}
  - {name: site, endpoints: ["10.0.0.2:8080"]}
`

// sharedTree is a tree with the certificates and trust store issue13YAML
// names, and config file edge.yaml holding yaml.
func sharedTree(t *testing.T, yaml string) *pkitest.Tree {
	t.Helper()
	tr := pkitest.NewTree(t)
	ca := pkitest.NewCA(t, "Partners CA")
	tr.Server("partners", ca.Server("partners.example.com", pkitest.DNS("partners.example.com", "*.partners.example.com")))
	tr.Server("www", ca.Server("www.example.com", pkitest.DNS("www.example.com", "example.com")))
	tr.Trust("partners", "ca.pem", ca.CertPEM())
	tr.WriteConfig("edge.yaml", yaml)
	return tr
}

func loadTree(t *testing.T, tr *pkitest.Tree) *config.Model {
	t.Helper()
	m, err := config.Load(tr.Certs, tr.Config)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func TestSharedAddressIssueYAML(t *testing.T) {
	m := loadTree(t, sharedTree(t, issue13YAML))
	for _, p := range m.Problems {
		t.Errorf("problem: %v", p)
	}
	if got := listenerNames(m); !slices.Equal(got, []string{"partners", "public"}) {
		t.Fatalf("listeners = %v", got)
	}
	partners, public := m.Listeners[0], m.Listeners[1]
	if !partners.SharedAddress || !public.SharedAddress {
		t.Errorf("SharedAddress = %v, %v; want both true", partners.SharedAddress, public.SharedAddress)
	}
	if want := []string{"*.partners.example.com", "partners.example.com"}; !slices.Equal(partners.ServerNames, []string{"partners.example.com", "*.partners.example.com"}) || !slices.Equal(public.PeerServerNames, want) {
		t.Errorf("partners.ServerNames = %v, public.PeerServerNames = %v (want %v)", partners.ServerNames, public.PeerServerNames, want)
	}
	if len(partners.PeerServerNames) != 0 || len(public.ServerNames) != 0 {
		t.Errorf("partners.PeerServerNames = %v, public.ServerNames = %v; want none", partners.PeerServerNames, public.ServerNames)
	}
}

func TestSharedAddressRefusals(t *testing.T) {
	cases := []struct {
		name string
		edit func(string) string
		want []string // "listener| text", $ROOT for the tree
	}{{
		name: "two listeners without server_names",
		edit: func(s string) string {
			return strings.Replace(s, `    server_names: [partners.example.com, "*.partners.example.com"]   # exact or one-label wildcard
`, "", 1)
		},
		want: []string{
			`partners| $ROOT/config/edge.yaml:2: listener "partners": shares address 0.0.0.0:8443 with listener "public" ($ROOT/config/edge.yaml:7), and neither sets server_names: at most one listener per address may omit them (it takes clients with no or an unclaimed server name); give one of them server_names`,
			`public| $ROOT/config/edge.yaml:7: listener "public": shares address 0.0.0.0:8443 with listener "partners" ($ROOT/config/edge.yaml:2), and neither sets server_names: at most one listener per address may omit them (it takes clients with no or an unclaimed server name); give one of them server_names`,
		},
	}, {
		name: "an exact name under the other's wildcard",
		edit: func(s string) string {
			return strings.Replace(s, "    certificates: [www]\n", "    server_names: [API.partners.example.com]\n    certificates: [www]\n", 1)
		},
		want: []string{
			`partners| $ROOT/config/edge.yaml:4: listener "partners": server name "*.partners.example.com" overlaps "api.partners.example.com" of listener "public" ($ROOT/config/edge.yaml:10), which shares address 0.0.0.0:8443: listeners on one address need disjoint server_names so that SNI chooses exactly one (an exact name under another listener's wildcard counts too)`,
			`public| $ROOT/config/edge.yaml:10: listener "public": server name "api.partners.example.com" overlaps "*.partners.example.com" of listener "partners" ($ROOT/config/edge.yaml:4), which shares address 0.0.0.0:8443: listeners on one address need disjoint server_names so that SNI chooses exactly one (an exact name under another listener's wildcard counts too)`,
		},
	}, {
		name: "nested wildcards",
		edit: func(s string) string {
			return strings.Replace(s, "    certificates: [www]\n", "    server_names: [\"*.example.com\"]\n    certificates: [www]\n", 1)
		},
		want: []string{
			`partners| $ROOT/config/edge.yaml:4: listener "partners": server name "partners.example.com" overlaps "*.example.com" of listener "public" ($ROOT/config/edge.yaml:10), which shares address 0.0.0.0:8443: listeners on one address need disjoint server_names so that SNI chooses exactly one (an exact name under another listener's wildcard counts too)`,
			`public| $ROOT/config/edge.yaml:10: listener "public": server name "*.example.com" overlaps "partners.example.com" of listener "partners" ($ROOT/config/edge.yaml:4), which shares address 0.0.0.0:8443: listeners on one address need disjoint server_names so that SNI chooses exactly one (an exact name under another listener's wildcard counts too)`,
		},
	}, {
		name: "the same exact name",
		edit: func(s string) string {
			return strings.Replace(s, "    certificates: [www]\n", "    server_names: [partners.example.com]\n    certificates: [www]\n", 1)
		},
		want: []string{
			`partners| $ROOT/config/edge.yaml:4: listener "partners": server name "partners.example.com" overlaps "partners.example.com" of listener "public" ($ROOT/config/edge.yaml:10), which shares address 0.0.0.0:8443: listeners on one address need disjoint server_names so that SNI chooses exactly one (an exact name under another listener's wildcard counts too)`,
			`public| $ROOT/config/edge.yaml:10: listener "public": server name "partners.example.com" overlaps "partners.example.com" of listener "partners" ($ROOT/config/edge.yaml:4), which shares address 0.0.0.0:8443: listeners on one address need disjoint server_names so that SNI chooses exactly one (an exact name under another listener's wildcard counts too)`,
		},
	}, {
		name: "a route for another listener's host",
		edit: func(s string) string {
			return strings.Replace(s, "    routes: [{path_prefix: /, backend: site}]", "    routes: [{host: x.partners.example.com, path_prefix: /, backend: site}, {path_prefix: /, backend: site}]", 1)
		},
		want: []string{
			`public| $ROOT/config/edge.yaml:12: listener "public": routes[0]: host "x.partners.example.com" is listener "partners"'s (server name "*.partners.example.com", $ROOT/config/edge.yaml:4) on shared address 0.0.0.0:8443: SNI sends those clients there, and this listener answers such a Host 421; move the route to listener "partners"`,
		},
	}, {
		name: "empty list",
		edit: func(s string) string {
			return strings.Replace(s, `[partners.example.com, "*.partners.example.com"]`, "[]", 1)
		},
		want: []string{`partners| $ROOT/config/edge.yaml:4: listener "partners": server_names: the list is empty; omit server_names for a listener that takes any server name`},
	}, {
		name: "wildcard inside a label",
		edit: func(s string) string {
			return strings.Replace(s, `"*.partners.example.com"`, `"api*.partners.example.com"`, 1)
		},
		want: []string{`partners| $ROOT/config/edge.yaml:4: listener "partners": server_names[1] "api*.partners.example.com": a wildcard is only "*." followed by a DNS name (like *.example.com)`},
	}, {
		name: "wildcard of a top-level domain",
		edit: func(s string) string { return strings.Replace(s, `"*.partners.example.com"`, `"*.com"`, 1) },
		want: []string{`partners| $ROOT/config/edge.yaml:4: listener "partners": server_names[1] "*.com": a wildcard needs at least two labels after "*." (like *.example.com)`},
	}, {
		name: "an IP address",
		edit: func(s string) string { return strings.Replace(s, `"*.partners.example.com"`, `"10.0.0.1"`, 1) },
		want: []string{`partners| $ROOT/config/edge.yaml:4: listener "partners": server_names[1] "10.0.0.1": an IP address is never sent as a TLS server name`},
	}, {
		name: "trailing dot",
		edit: func(s string) string {
			return strings.Replace(s, `[partners.example.com,`, `[partners.example.com.,`, 1)
		},
		want: []string{`partners| $ROOT/config/edge.yaml:4: listener "partners": server_names[0] "partners.example.com.": write it without the trailing dot`},
	}, {
		name: "listed twice, case aside",
		edit: func(s string) string {
			return strings.Replace(s, `"*.partners.example.com"`, `Partners.Example.com`, 1)
		},
		want: []string{`partners| $ROOT/config/edge.yaml:4: listener "partners": server_names: "Partners.Example.com" is listed twice`},
	}, {
		name: "covered within one listener",
		edit: func(s string) string {
			return strings.Replace(s, `[partners.example.com,`, `[a.partners.example.com,`, 1)
		},
		want: []string{`partners| $ROOT/config/edge.yaml:4: listener "partners": server_names: "*.partners.example.com" is already covered by "a.partners.example.com"`},
	}, {
		name: "overlapping but different addresses still clash",
		edit: func(s string) string {
			return strings.Replace(s, "  - name: public                      # no server_names: the default for other or absent SNI\n    address: 0.0.0.0:8443", "  - name: public\n    address: 127.0.0.1:8443", 1)
		},
		want: []string{
			`partners| $ROOT/config/edge.yaml:2: listener "partners": address 0.0.0.0:8443 clashes with listener "public" (127.0.0.1:8443, $ROOT/config/edge.yaml:8): two listeners cannot share a port on overlapping addresses`,
			`public| $ROOT/config/edge.yaml:8: listener "public": address 127.0.0.1:8443 clashes with listener "partners" (0.0.0.0:8443, $ROOT/config/edge.yaml:2): two listeners cannot share a port on overlapping addresses`,
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := sharedTree(t, c.edit(issue13YAML))
			m := loadTree(t, tr)
			var got []string
			for _, p := range m.Problems {
				got = append(got, p.Listener+"| "+strings.ReplaceAll(p.Error(), tr.Root, "$ROOT"))
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("problems:\n got: %q\nwant: %q", got, c.want)
			}
			for _, l := range m.Listeners {
				for _, p := range m.Problems {
					if p.Listener == l.Name {
						t.Errorf("listener %s is served despite its problem", l.Name)
					}
				}
			}
		})
	}
}

func TestServerNameMatches(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"partners.example.com", "partners.example.com", true},
		{"partners.example.com", "a.partners.example.com", false},
		{"*.partners.example.com", "a.partners.example.com", true},
		{"*.partners.example.com", "a.b.partners.example.com", true}, // Envoy's filter chain matcher
		{"*.partners.example.com", "partners.example.com", false},
		{"*.partners.example.com", ".partners.example.com", false},
		{"*.partners.example.com", "evilpartners.example.com", false},
	} {
		if got := config.ServerNameMatches(c.pattern, c.name); got != c.want {
			t.Errorf("ServerNameMatches(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}
