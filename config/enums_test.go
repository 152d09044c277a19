package config_test

import (
	"encoding/json"
	"testing"

	"github.com/certplane/certplane/config"
)

// TestEnumsRoundTrip: every value's String is the YAML spelling its parse
// function takes back, so check output, status and goldens print what
// users write.
func TestEnumsRoundTrip(t *testing.T) {
	for _, m := range []config.ClientAuthMode{config.ModeOff, config.ModeOptional, config.ModePassthrough, config.ModeVerify} {
		if got, err := config.ParseClientAuthMode(m.String()); err != nil || got != m {
			t.Errorf("ParseClientAuthMode(%q) = %v, %v", m, got, err)
		}
	}
	for _, s := range []config.CRLScope{config.CRLFullChain, config.CRLLeafOnly} {
		if got, err := config.ParseCRLScope(s.String()); err != nil || got != s {
			t.Errorf("ParseCRLScope(%q) = %v, %v", s, got, err)
		}
	}
	for _, a := range []config.UnderscoresAction{config.UnderscoresDrop, config.UnderscoresReject} {
		if got, err := config.ParseUnderscoresAction(a.String()); err != nil || got != a {
			t.Errorf("ParseUnderscoresAction(%q) = %v, %v", a, got, err)
		}
	}
	for _, h := range []config.ClientCertHeader{config.HeaderXFCC, config.HeaderALB} {
		if got, err := config.ParseClientCertHeader(h.String()); err != nil || got != h {
			t.Errorf("ParseClientCertHeader(%q) = %v, %v", h, got, err)
		}
	}
	for _, st := range []config.SANType{config.SANDNS, config.SANURI, config.SANEmail, config.SANIP} {
		if got, err := config.ParseSANType(st.String()); err != nil || got != st {
			t.Errorf("ParseSANType(%q) = %v, %v", st, got, err)
		}
	}
	want := map[string]string{
		config.ModePassthrough.String(): "passthrough", config.CRLLeafOnly.String(): "leaf_only",
		config.UnderscoresReject.String(): "reject", config.HeaderALB.String(): "alb", config.SANEmail.String(): "email",
		config.TLSPolicyCustom.String(): "custom", config.TLSv13.String(): "TLSv1_3",
	}
	for got, w := range want {
		if got != w {
			t.Errorf("String() = %q, want %q", got, w)
		}
	}
	b, err := json.Marshal(config.ClientAuth{Mode: config.ModeVerify, CRL: config.CRLLeafOnly})
	if err != nil || !json.Valid(b) || string(b[:31]) != `{"Mode":"verify","TrustStore":"` {
		t.Errorf("JSON of a ClientAuth = %s, %v; want the YAML spellings", b, err)
	}
}

// TestEnumsRefuse: a value with no spelling, zero included where zero is not
// a value, is refused by the parse functions and prints as its type.
func TestEnumsRefuse(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errOf(config.ParseClientAuthMode("maybe")), `mode "maybe": want off, optional, passthrough or verify`},
		{errOf(config.ParseClientAuthMode("Verify")), `mode "Verify": want off, optional, passthrough or verify`},
		{errOf(config.ParseCRLScope("")), `crl "": want full_chain or leaf_only`},
		{errOf(config.ParseUnderscoresAction("allow")), `headers_with_underscores "allow": want drop (the default: remove such headers) or reject (answer 400)`},
		{errOf(config.ParseClientCertHeader("")), `"" is not one of xfcc, alb`},
		{errOf(config.ParseSANType("upn")), `type "upn": want dns, uri, email or ip`},
	} {
		if tc.err == nil || tc.err.Error() != tc.want {
			t.Errorf("error %v, want %s", tc.err, tc.want)
		}
	}
	if got := config.ClientCertHeader(0).String(); got != "ClientCertHeader(0)" {
		t.Errorf("zero header prints %q", got)
	}
}

func errOf[T any](_ T, err error) error { return err }
