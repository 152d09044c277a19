package config_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/certplane/certplane/config"
)

func TestParseAllowSubjectsXFCC(t *testing.T) {
	cf := parseOne(t, `
listeners:
  - name: partners
    address: 0.0.0.0:8443
    certificates: [partners]
    client_auth:
      mode: verify
      trust_store: partners
      subjects:
        - {type: dns, suffix: ".partners.example"}
        - {type: subject, contains: "O=Partners"}
    client_cert_headers:
      - alb
      - xfcc: {mode: append_forward, fields: [dns, hash, subject]}
    routes:
      - path_prefix: /admin
        backend: app
        allow:
          - {type: uri, exact: "spiffe://partners/admin"}
          - {type: subject, contains: "OU=ops"}
          - {type: email, prefix: "ops@"}
          - {type: ip, exact: "10.0.0.1"}
          - {type: dns, regex: "[a-z]+\\.ops\\.example"}
      - {path_prefix: /, backend: app}
`)
	l := cf.Listeners[0]
	wantSubjects := []config.IdentityMatcher{
		{Type: config.IdentityDNS, Suffix: ".partners.example"},
		{Type: config.IdentitySubject, Contains: "O=Partners"},
	}
	if diff := cmp.Diff(wantSubjects, l.ClientAuth.Subjects); diff != "" {
		t.Errorf("subjects (-want +got):\n%s", diff)
	}
	wantAllow := []config.IdentityMatcher{
		{Type: config.IdentityURI, Exact: "spiffe://partners/admin"},
		{Type: config.IdentitySubject, Contains: "OU=ops"},
		{Type: config.IdentityEmail, Prefix: "ops@"},
		{Type: config.IdentityIP, Exact: "10.0.0.1"},
		{Type: config.IdentityDNS, Regex: `[a-z]+\.ops\.example`},
	}
	if diff := cmp.Diff(wantAllow, l.Routes[0].Allow); diff != "" {
		t.Errorf("allow (-want +got):\n%s", diff)
	}
	if l.Routes[1].Allow != nil {
		t.Errorf("route / allow = %v, want none", l.Routes[1].Allow)
	}
	wantXFCC := config.XFCC{Mode: config.XFCCAppendForward, Fields: []config.XFCCField{config.XFCCHash, config.XFCCSubject, config.XFCCDNS}}
	if diff := cmp.Diff(wantXFCC, l.XFCC); diff != "" {
		t.Errorf("xfcc (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]config.ClientCertHeader{config.HeaderALB, config.HeaderXFCC}, l.ClientCertHeaders); diff != "" {
		t.Errorf("client_cert_headers (-want +got):\n%s", diff)
	}
	// Restricted by subjects: forwarding XFCC is not warned about.
	if len(cf.Warnings) != 0 {
		t.Errorf("warnings: %v", cf.Warnings)
	}
}

func TestXFCCForwardWarning(t *testing.T) {
	cf := parseOne(t, `
listeners:
  - name: a
    address: 0.0.0.0:1
    certificates: [a]
    client_auth: {mode: verify, trust_store: t}
    client_cert_headers:
      - xfcc: {mode: forward_only}
    routes: [{path_prefix: /, backend: b}]
`)
	if x := cf.Listeners[0].XFCC; x.Mode != config.XFCCForwardOnly || x.Fields != nil {
		t.Errorf("xfcc = %+v, want forward_only without fields", x)
	}
	want := `c.yaml:7: listener "a": client_cert_headers xfcc mode forward_only forwards the x-forwarded-client-cert header clients send, ` +
		`and no subject_alt_names, pins or subjects limit the clients to trusted proxies: any client with a certificate this listener accepts can forge identities for the backends`
	if len(cf.Warnings) != 1 || cf.Warnings[0].Error() != want {
		t.Errorf("warnings %v\nwant %s", cf.Warnings, want)
	}
}

// TestAuthzRefusals pins the text and line of each refusal of allow,
// subjects and the xfcc entry: check prints exactly these.
func TestAuthzRefusals(t *testing.T) {
	const head = "listeners:\n  - name: a\n    address: 0.0.0.0:1\n    certificates: [a]\n"
	const verify = "    client_auth: {mode: verify, trust_store: t}\n"
	route := func(allow string) string {
		return "    routes:\n      - path_prefix: /\n        backend: b\n        allow:\n" + allow
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"allow with mode off", head + route("          - {type: uri, exact: x}\n"),
			`c.yaml:8: listener "a": routes[0]: allow: client_auth mode off requests no client certificate, so there is no identity to authorize (use mode verify, or optional to answer 403 to clients without one)`},
		{"allow with passthrough", head + "    client_auth: {mode: passthrough}\n" + route("          - {type: uri, exact: x}\n"),
			`c.yaml:9: listener "a": routes[0]: allow: client_auth mode passthrough does not verify the client certificate, so its identity proves nothing (use mode verify)`},
		{"empty allow", head + verify + "    routes:\n      - {path_prefix: /, backend: b, allow: []}\n",
			`c.yaml:7: listener "a": routes[0]: allow is empty, which would admit nobody; remove it to admit every client the listener accepts`},
		{"unknown type", head + verify + route("          - {type: cn, exact: x}\n"),
			`c.yaml:10: listener "a": routes[0]: allow[0]: type "cn": want dns, uri, email, ip, subject or issuer`},
		{"two patterns", head + verify + route("          - {type: uri, exact: x, prefix: y}\n"),
			`c.yaml:10: listener "a": routes[0]: allow[0]: want exactly one of exact, prefix, suffix, contains, regex; got 2`},
		{"bad regex", head + verify + route("          - {type: subject, regex: \"CN=(\"}\n"),
			"c.yaml:10: listener \"a\": routes[0]: allow[0]: regex \"CN=(\" does not compile as RE2: error parsing regexp: missing closing ): `CN=(`"},
		{"ip not an IP", head + verify + route("          - {type: ip, exact: host}\n"),
			`c.yaml:10: listener "a": routes[0]: allow[0]: exact "host" is not an IP address`},
		{"subjects with mode off", head + "    client_auth: {subjects: [{type: uri, exact: x}]}\n" + route("          - {type: uri, exact: x}\n"),
			`c.yaml:5: listener "a": client_auth: mode off requests no client certificate, so subjects cannot apply (use mode verify)`},
		{"empty subjects", head + "    client_auth: {mode: verify, trust_store: t, subjects: []}\n    routes: [{path_prefix: /, backend: b}]\n",
			`c.yaml:5: listener "a": client_auth: subjects is empty, which would admit nobody; remove it to admit every verified client`},
		{"xfcc unknown mode", head + verify + "    client_cert_headers:\n      - xfcc: {mode: trust}\n    routes: [{path_prefix: /, backend: b}]\n",
			`c.yaml:7: listener "a": client_cert_headers[0]: xfcc: mode "trust": want sanitize_set (the default), append_forward or forward_only`},
		{"xfcc without hash", head + verify + "    client_cert_headers:\n      - xfcc: {fields: [subject, uri]}\n    routes: [{path_prefix: /, backend: b}]\n",
			`c.yaml:7: listener "a": client_cert_headers[0]: xfcc: fields must include hash: Envoy always writes Hash= (the SHA-256 of the client certificate)`},
		{"xfcc unknown field", head + verify + "    client_cert_headers:\n      - xfcc: {fields: [hash, san]}\n    routes: [{path_prefix: /, backend: b}]\n",
			`c.yaml:7: listener "a": client_cert_headers[0]: xfcc: fields: "san" is not one of hash, cert, chain, subject, uri, dns`},
		{"forward_only with fields", head + verify + "    client_cert_headers:\n      - xfcc: {mode: forward_only, fields: [hash]}\n    routes: [{path_prefix: /, backend: b}]\n",
			`c.yaml:7: listener "a": client_cert_headers[0]: xfcc: fields apply to sanitize_set and append_forward; forward_only adds nothing`},
		{"append_forward with passthrough", head + "    client_auth: {mode: passthrough}\n    client_cert_headers:\n      - xfcc: {mode: append_forward}\n    routes: [{path_prefix: /, backend: b}]\n",
			`c.yaml:7: listener "a": client_cert_headers[0]: xfcc: mode append_forward keeps the XFCC header the client sent, and client_auth mode passthrough does not verify who the client is: anyone could forge identities for the backends (use mode verify with subject_alt_names naming the trusted proxies)`},
		{"xfcc twice", head + verify + "    client_cert_headers: [xfcc, {xfcc: {mode: sanitize_set}}]\n    routes: [{path_prefix: /, backend: b}]\n",
			`c.yaml:6: listener "a": client_cert_headers: "xfcc" is listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf, err := config.ParseConfig("c.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			var got []string
			for _, p := range cf.Problems {
				got = append(got, p.Error())
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), tc.want)
			}
		})
	}
}

func TestXFCCEntryFileErrors(t *testing.T) {
	const l = "listeners:\n  - name: a\n    address: 0.0.0.0:1\n    certificates: [a]\n    client_auth: {mode: verify, trust_store: t}\n    routes: [{path_prefix: /, backend: b}]\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", l + "    client_cert_headers:\n      - xfcc: {mode: sanitize_set, feilds: [hash]}\n",
			`c.yaml:8: unknown key "feilds" in a client_cert_headers xfcc entry (known keys: mode, fields)`},
		{"other mapping", l + "    client_cert_headers:\n      - alb: {mode: x}\n",
			`c.yaml:8: a client_cert_headers mapping is {xfcc: {mode, fields}}`},
		{"unknown key in allow", strings.Replace(l, "backend: b}", "backend: b, allow: [{type: uri, exactly: x}]}", 1),
			`c.yaml:6: unknown key "exactly" in an allow or subjects entry (known keys: type, exact, prefix, suffix, contains, regex)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.ParseConfig("c.yaml", []byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v\nwant %s", err, tc.want)
			}
		})
	}
}
