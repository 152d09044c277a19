package config_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/config"
	"github.com/google/go-cmp/cmp"
)

func parseOne(t *testing.T, y string) *config.ConfigFile {
	t.Helper()
	cf, err := config.ParseConfig("c.yaml", []byte(y))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	for _, p := range cf.Problems {
		t.Fatalf("problem: %v", p)
	}
	return cf
}

func TestParseConfigFullSchema(t *testing.T) {
	cf := parseOne(t, `
listeners:
  - name: payments
    address: "[::1]:8443"
    certificates: [payments, api.example.com]
    tls_policy: {min_version: "1.2", max_version: "1.2", cipher_suites: [ECDHE-ECDSA-AES256-GCM-SHA384]}
    http2: false
    http: {headers_with_underscores: reject}
    client_auth:
      mode: verify
      trust_store: partners
      crl: leaf_only
      allow_expired: true
      max_verify_depth: 4
      certificate_hashes: ["AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"]
      spki_hashes: ["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]
      advertise_ca_names: false
      subject_alt_names:
        - {type: uri, prefix: "spiffe://partners/"}
        - {type: dns, exact: client.partner.example}
        - {type: email, suffix: "@partner.example"}
        - {type: ip, exact: "10.1.2.3"}
        - {type: dns, regex: "^[a-z]+\\.partner\\.example$"}
        - {type: uri, contains: "/payments/"}
    client_cert_headers: [alb, xfcc]
    routes:
      - {path_prefix: /api, backend: payments}
      - {path_prefix: /, backend: payments}
backends:
  - name: payments
    endpoints: ["10.0.0.11:8080", "app.internal:8080", "[fd00::1]:8080"]
    health_check: {path: /ready, interval: 2s, timeout: 500ms, healthy_threshold: 3, unhealthy_threshold: 4}
    tls: {trust_store: internal, certificate: edge-client, sni: app.internal}
`)
	depth := uint32(4)
	want := &config.Listener{
		Name: "payments", Address: "[::1]:8443", Host: "::1", Port: 8443,
		Certificates: []string{"payments", "api.example.com"},
		TLS:          config.TLSPolicy{Name: config.TLSPolicyCustom, MinVersion: config.TLSv12, MaxVersion: config.TLSv12, CipherSuites: []string{"ECDHE-ECDSA-AES256-GCM-SHA384"}},
		HTTP:         config.HTTPPolicy{HeadersWithUnderscores: config.UnderscoresReject},
		ClientAuth: config.ClientAuth{
			Mode: config.ModeVerify, TrustStore: "partners", CRL: config.CRLLeafOnly, AllowExpired: true, MaxVerifyDepth: &depth,
			CertificateHashes: []string{"abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"},
			SPKIHashes:        []string{"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
			SubjectAltNames: []config.SANMatcher{
				{Type: config.SANURI, Prefix: "spiffe://partners/"},
				{Type: config.SANDNS, Exact: "client.partner.example"},
				{Type: config.SANEmail, Suffix: "@partner.example"},
				{Type: config.SANIP, Exact: "10.1.2.3"},
				{Type: config.SANDNS, Regex: `^[a-z]+\.partner\.example$`},
				{Type: config.SANURI, Contains: "/payments/"},
			},
		},
		ClientCertHeaders: []config.ClientCertHeader{config.HeaderALB, config.HeaderXFCC},
		XFCC:              config.DefaultXFCC(),
		Routes:            []config.Route{{PathPrefix: "/api", Backend: "payments"}, {PathPrefix: "/", Backend: "payments"}},
		SourceFile:        "c.yaml",
	}
	if diff := cmp.Diff(want, cf.Listeners[0]); diff != "" {
		t.Errorf("listener (-want +got):\n%s", diff)
	}
	wantB := &config.Backend{
		Name:        "payments",
		Endpoints:   []config.Endpoint{{Host: "10.0.0.11", Port: 8080}, {Host: "app.internal", Port: 8080}, {Host: "fd00::1", Port: 8080}},
		HealthCheck: &config.HealthCheck{Path: "/ready", Interval: 2 * time.Second, Timeout: 500 * time.Millisecond, HealthyThreshold: 3, UnhealthyThreshold: 4},
		TLS:         &config.UpstreamTLS{TrustStore: "internal", Certificate: "edge-client", SNI: "app.internal"},
		SourceFile:  "c.yaml",
	}
	if diff := cmp.Diff(wantB, cf.Backends[0]); diff != "" {
		t.Errorf("backend (-want +got):\n%s", diff)
	}
	if !slices.Equal(cf.Names, []string{"payments"}) {
		t.Errorf("names = %v", cf.Names)
	}
}

func TestParseConfigPolicies(t *testing.T) {
	base := "listeners:\n  - name: a\n    address: 0.0.0.0:1\n    certificates: [a]\n    routes: [{path_prefix: /, backend: b}]\n"
	for _, tc := range []struct {
		policy string
		want   config.TLSPolicy
	}{
		{"", config.TLSPolicy{Name: config.TLSPolicy12, MinVersion: config.TLSv12, MaxVersion: config.TLSv13, CipherSuites: config.DefaultCipherSuites}},
		{"tls12", config.TLSPolicy{Name: config.TLSPolicy12, MinVersion: config.TLSv12, MaxVersion: config.TLSv13, CipherSuites: config.DefaultCipherSuites}},
		{"tls13", config.TLSPolicy{Name: config.TLSPolicy13, MinVersion: config.TLSv13, MaxVersion: config.TLSv13}},
		{`{min_version: "1.3"}`, config.TLSPolicy{Name: config.TLSPolicyCustom, MinVersion: config.TLSv13, MaxVersion: config.TLSv13}},
		{`{max_version: "1.2"}`, config.TLSPolicy{Name: config.TLSPolicyCustom, MinVersion: config.TLSv12, MaxVersion: config.TLSv12, CipherSuites: config.DefaultCipherSuites}},
	} {
		y := base
		if tc.policy != "" {
			y += "    tls_policy: " + tc.policy + "\n"
		}
		got := parseOne(t, y).Listeners[0].TLS
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("tls_policy %q = %+v, want %+v", tc.policy, got, tc.want)
		}
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cf := parseOne(t, `listeners:
  - name: a
    address: 0.0.0.0:443
    certificates: [a]
    client_auth: {mode: optional, trust_store: t}
    routes: [{path_prefix: /, backend: b}]
  - name: b
    address: 0.0.0.0:444
    certificates: [a]
    client_auth: {mode: passthrough}
    client_cert_headers: []
    routes: [{path_prefix: /, backend: b}]
---
backends:
  - {name: b, endpoints: ["10.0.0.1:80"]}
`)
	a, b := cf.Listeners[0], cf.Listeners[1]
	if !a.HTTP2 || a.HTTP.HeadersWithUnderscores != config.UnderscoresDrop || a.ClientAuth.CRL != config.CRLFullChain || !a.ClientAuth.AdvertiseCANames || !slices.Equal(a.ClientCertHeaders, []config.ClientCertHeader{config.HeaderXFCC}) {
		t.Errorf("defaults of a: %+v", a)
	}
	if len(b.ClientCertHeaders) != 0 || b.ClientAuth.Mode != config.ModePassthrough {
		t.Errorf("explicit empty headers of b: %+v", b)
	}
	if len(cf.Backends) != 1 || cf.Backends[0].HealthCheck != nil {
		t.Errorf("second document backends: %+v", cf.Backends)
	}
}

// TestParseConfigErrors pins the exact text of file-wide errors (the whole
// file is refused) and per-item problems.
func TestParseConfigErrors(t *testing.T) {
	const l = "listeners:\n  - name: a\n    address: 0.0.0.0:1\n    certificates: [a]\n    routes: [{path_prefix: /, backend: b}]\n"
	for _, tc := range []struct {
		name, yaml string
		fileErr    string   // error of ParseConfig
		problems   []string // per-item problems
	}{
		{name: "empty file", yaml: ""},
		{name: "comments only", yaml: "# nothing yet\n"},
		{name: "top-level typo", yaml: "listener: []\n",
			fileErr: `c.yaml:1: unknown key "listener" at the top level (known keys: listeners, backends, trust_stores)`},
		{name: "two unknown keys, both reported", yaml: l + "    htp2: true\n    foo: 1\n",
			fileErr: "c.yaml:6: unknown key \"htp2\" in a listener (known keys: name, address, server_names, certificates, tls_policy, http2, http, client_auth, client_cert_headers, routes)\n" +
				"c.yaml:7: unknown key \"foo\" in a listener (known keys: name, address, server_names, certificates, tls_policy, http2, http, client_auth, client_cert_headers, routes)"},
		{name: "unknown key in http", yaml: l + "    http: {underscores: drop}\n",
			fileErr: `c.yaml:6: unknown key "underscores" in a listener's http (known keys: headers_with_underscores)`},
		{name: "http not a mapping", yaml: l + "    http: drop\n",
			fileErr: "c.yaml:6: listeners[0] (\"a\").http: cannot unmarshal !!str `drop` into a listener's http"},
		{name: "unknown key in tls_policy", yaml: l + "    tls_policy: {min: \"1.2\"}\n",
			fileErr: `c.yaml:6: unknown key "min" in tls_policy (known keys: min_version, max_version, cipher_suites)`},
		{name: "unknown key in health_check", yaml: "backends:\n  - name: b\n    endpoints: [\"1.2.3.4:80\"]\n    health_check: {intervall: 5s}\n",
			fileErr: `c.yaml:4: unknown key "intervall" in health_check (known keys: path, interval, timeout, healthy_threshold, unhealthy_threshold)`},
		{name: "type error names its field among several on one line", yaml: "listeners:\n  - name: a\n    routes: [{path_prefix: /, backend: [demo]}]\n",
			fileErr: "c.yaml:3: listeners[0] (\"a\").routes[0].backend: cannot unmarshal !!seq into string"},
		{name: "type error in a list item", yaml: "backends:\n  - name: b\n    endpoints: [\"1.2.3.4:80\", {a: b}]\n",
			fileErr: "c.yaml:3: backends[0] (\"b\").endpoints[1]: cannot unmarshal !!map into string"},
		{name: "duplicate key", yaml: l + "    address: 0.0.0.0:2\n",
			fileErr: `c.yaml:6: listeners[0] ("a").address: mapping key "address" already defined at line 3`},
		{name: "listener without name", yaml: "listeners:\n  - address: 0.0.0.0:1\n",
			fileErr: `c.yaml:2: listener 1: name "" must match [a-z0-9-]+`},
		{name: "listener name with capitals", yaml: "listeners:\n  - name: Payments\n",
			fileErr: `c.yaml:2: listener 1: name "Payments" must match [a-z0-9-]+`},
		{name: "negative number", yaml: l + "    client_auth: {mode: verify, trust_store: t, max_verify_depth: -1}\n",
			fileErr: "c.yaml:6: listeners[0] (\"a\").client_auth.max_verify_depth: cannot unmarshal !!int `-1` into uint32"},
		{name: "tls_policy list", yaml: l + "    tls_policy: [tls12]\n",
			fileErr: "c.yaml:6: tls_policy must be tls12, tls13 or a mapping {min_version, max_version, cipher_suites}"},
		{name: "tab indentation", yaml: "listeners:\n\t- name: a\n",
			fileErr: "c.yaml:2: invalid YAML: found character that cannot start any token"},
		{name: "unknown policy name", yaml: l + "    tls_policy: modern\n",
			problems: []string{`c.yaml:6: listener "a": tls_policy "modern": want tls12, tls13 or a mapping {min_version, max_version, cipher_suites}`}},
		{name: "min above max", yaml: l + "    tls_policy: {min_version: \"1.3\", max_version: \"1.2\"}\n",
			problems: []string{`c.yaml:6: listener "a": tls_policy: min_version 1.3 is above max_version 1.2`}},
		{name: "suites with TLS 1.3 only", yaml: l + "    tls_policy: {min_version: \"1.3\", cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]}\n",
			problems: []string{`c.yaml:6: listener "a": tls_policy: cipher_suites apply to TLS 1.2 only and min_version is 1.3; remove them`}},
		{name: "no certificates", yaml: "listeners:\n  - name: a\n    address: 0.0.0.0:1\n    routes: [{path_prefix: /, backend: b}]\n",
			problems: []string{`c.yaml:2: listener "a": certificates: at least one server certificate name is required`}},
		{name: "no routes", yaml: "listeners:\n  - name: a\n    address: 0.0.0.0:1\n    certificates: [a]\n",
			problems: []string{`c.yaml:2: listener "a": routes: at least one route is required`}},
		{name: "route without slash", yaml: "listeners:\n  - name: a\n    address: 0.0.0.0:1\n    certificates: [a]\n    routes:\n      - {path_prefix: /, backend: b}\n      - {path_prefix: api, backend: b}\n",
			problems: []string{`c.yaml:7: listener "a": routes[1]: path_prefix "api" must start with /`}},
		{name: "shadowed route", yaml: "listeners:\n  - name: a\n    address: 0.0.0.0:1\n    certificates: [a]\n    routes:\n      - {path_prefix: /, backend: b}\n      - {path_prefix: /, backend: c}\n",
			problems: []string{`c.yaml:7: listener "a": routes[1]: routes[0] above matches every request this route matches (path_prefix /), so this route would never match`}},
		{name: "address without port", yaml: strings.Replace(l, "0.0.0.0:1", "10.0.0.1", 1),
			problems: []string{`c.yaml:3: listener "a": address "10.0.0.1": want host:port, e.g. 0.0.0.0:8443 or [::]:8443`}},
		{name: "address with zone", yaml: strings.Replace(l, "0.0.0.0:1", `"[fe80::1%eth0]:443"`, 1),
			problems: []string{`c.yaml:3: listener "a": address "[fe80::1%eth0]:443": host "fe80::1%eth0" must be an IP address (0.0.0.0 or :: for every interface)`}},
		{name: "bad headers_with_underscores", yaml: l + "    http:\n      headers_with_underscores: allow\n",
			problems: []string{`c.yaml:7: listener "a": http: headers_with_underscores "allow": want drop (the default: remove such headers) or reject (answer 400)`}},
		{name: "unknown mode", yaml: l + "    client_auth: {mode: required}\n",
			problems: []string{`c.yaml:6: listener "a": client_auth: mode "required": want off, optional, passthrough or verify`}},
		{name: "off with SAN rules", yaml: l + "    client_auth: {subject_alt_names: [{type: dns, exact: x}], crl: leaf_only}\n",
			problems: []string{`c.yaml:6: listener "a": client_auth: mode off requests no client certificate, so crl, subject_alt_names cannot apply (use mode verify)`}},
		{name: "headers with mode off", yaml: l + "    client_cert_headers: [xfcc]\n",
			problems: []string{`c.yaml:6: listener "a": client_cert_headers: no client certificate is requested with client_auth mode off, so there is nothing to forward`}},
		{name: "unknown header", yaml: l + "    client_auth: {mode: passthrough}\n    client_cert_headers: [x-client-cert]\n",
			problems: []string{`c.yaml:7: listener "a": client_cert_headers[0]: "x-client-cert" is not one of xfcc, alb`}},
		{name: "bad crl", yaml: l + "    client_auth: {mode: verify, trust_store: t, crl: none}\n",
			problems: []string{`c.yaml:6: listener "a": client_auth: crl "none": want full_chain or leaf_only`}},
		{name: "spki not 32 bytes", yaml: l + "    client_auth:\n      mode: verify\n      trust_store: t\n      spki_hashes:\n        - \"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"\n        - \"AAAA\"\n",
			problems: []string{`c.yaml:11: listener "a": client_auth: spki_hashes[1] "AAAA": want the base64 SHA-256 of the certificate's SubjectPublicKeyInfo (44 characters)`}},
		{name: "duplicate pin after normalisation", yaml: l + "    client_auth: {mode: verify, trust_store: t, certificate_hashes: [" + strings.Repeat("ab", 32) + ", \"" + strings.ToUpper(strings.Repeat("ab", 32)) + "\"]}\n",
			problems: []string{`c.yaml:6: listener "a": client_auth: certificate_hashes[1] "` + strings.ToUpper(strings.Repeat("ab", 32)) + `" is listed twice`}},
		{name: "empty SAN value", yaml: l + "    client_auth: {mode: verify, trust_store: t, subject_alt_names: [{type: dns, exact: \"\"}]}\n",
			problems: []string{`c.yaml:6: listener "a": client_auth: subject_alt_names[0]: exact must not be empty`}},
		{name: "ip SAN not an IP", yaml: l + "    client_auth: {mode: verify, trust_store: t, subject_alt_names: [{type: ip, exact: host}]}\n",
			problems: []string{`c.yaml:6: listener "a": client_auth: subject_alt_names[0]: exact "host" is not an IP address`}},
		{name: "backend without endpoints", yaml: "backends:\n  - name: b\n",
			problems: []string{`c.yaml:2: backend "b": endpoints: at least one host:port is required`}},
		{name: "backend endpoint twice", yaml: "backends:\n  - name: b\n    endpoints: [\"10.0.0.1:80\", \"10.0.0.1:80\"]\n",
			problems: []string{`c.yaml:3: backend "b": endpoints[1] "10.0.0.1:80" is listed twice`}},
		{name: "backend wildcard endpoint", yaml: "backends:\n  - name: b\n    endpoints: [\"0.0.0.0:80\"]\n",
			problems: []string{`c.yaml:3: backend "b": endpoints[0] "0.0.0.0:80": 0.0.0.0 is not a host address`}},
		{name: "bad duration", yaml: "backends:\n  - name: b\n    endpoints: [\"10.0.0.1:80\"]\n    health_check:\n      interval: 5\n",
			problems: []string{`c.yaml:5: backend "b": health_check: interval "5": want a positive duration such as 5s or 500ms`}},
		{name: "timeout above interval", yaml: "backends:\n  - name: b\n    endpoints: [\"10.0.0.1:80\"]\n    health_check: {timeout: 10s}\n",
			problems: []string{`c.yaml:4: backend "b": health_check: timeout 10s is longer than interval 5s`}},
		{name: "zero threshold", yaml: "backends:\n  - name: b\n    endpoints: [\"10.0.0.1:80\"]\n    health_check: {healthy_threshold: 0}\n",
			problems: []string{`c.yaml:4: backend "b": health_check: thresholds must be at least 1`}},
		{name: "upstream tls without trust store", yaml: "backends:\n  - name: b\n    endpoints: [\"10.0.0.1:80\"]\n    tls: {sni: x.example}\n",
			problems: []string{`c.yaml:4: backend "b": tls: trust_store is required to verify the backends (a directory under certs/trust)`}},
		{name: "upstream bad sni", yaml: "backends:\n  - name: b\n    endpoints: [\"10.0.0.1:80\"]\n    tls: {trust_store: t, sni: \"not a name\"}\n",
			problems: []string{`c.yaml:4: backend "b": tls: sni "not a name" is not a DNS name`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf, err := config.ParseConfig("c.yaml", []byte(tc.yaml))
			if tc.fileErr != "" {
				if err == nil || err.Error() != tc.fileErr {
					t.Fatalf("err = %v\nwant %s", err, tc.fileErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			var got []string
			for _, p := range cf.Problems {
				got = append(got, p.Error())
				if p.Line == 0 || p.File != "c.yaml" {
					t.Errorf("problem without file or line: %+v", p)
				}
			}
			assertProblems(t, "problems", got, tc.problems)
		})
	}
}

func TestConfigDirIgnoresDotAndEditorFiles(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{".web.yaml.swp", "web.yaml~", "#web.yaml#", ".hidden.yaml", "notes.txt", "web.yaml.swp"} {
		f.tr.WriteConfig(name, "this: is [not valid")
	}
	m := f.load()
	assertProblems(t, "problems", f.render(m.Problems), nil)
	if got := listenerNames(m); !slices.Equal(got, []string{"other", "web"}) {
		t.Fatalf("listeners = %v", got)
	}
}

func TestConfigFileFailureKeepsOtherFiles(t *testing.T) {
	f := newFixture(t)
	f.tr.WriteConfig("web.yml", "listeners: [") // .yml is read too
	f.tr.Remove("config/web.yaml")
	m := f.load()
	assertProblems(t, "problems", f.render(m.Problems), []string{
		"| $ROOT/config/web.yml:2: invalid YAML: did not find expected node content",
	})
	if _, ok := m.Sources["web"]; ok {
		t.Errorf("a file that failed to parse must not claim its listeners: %v", m.Sources)
	}
	if m.Sources["other"] != f.path("config/other.yaml") {
		t.Errorf("sources = %v", m.Sources)
	}
}
