package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
)

func loadCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestXFCCGolden: the golden value was written by an independent script from
// Envoy's rules (key order, one By/URI/DNS per SAN, the five URL escapes) and
// the subject openssl prints with -nameopt RFC2253.
func TestXFCCGolden(t *testing.T) {
	client := loadCert(t, "testdata/xfcc-client.pem")
	server := loadCert(t, "testdata/xfcc-server.pem")
	want, err := os.ReadFile("testdata/xfcc-golden.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := XFCC(server, []*x509.Certificate{client}); got != string(want) {
		t.Fatalf("XFCC mismatch\n got: %s\nwant: %s", got, want)
	}
}

func TestXFCCShapes(t *testing.T) {
	client := loadCert(t, "testdata/xfcc-client.pem")
	server := loadCert(t, "testdata/xfcc-server.pem")
	if got := XFCC(server, nil); got != "" {
		t.Fatalf("no peer certificate: XFCC %q, want empty (SANITIZE_SET removes the header)", got)
	}
	// No local certificate gives no By; a peer without URI
	// SANs gives a lone "URI=" and no DNS key.
	got := XFCC(nil, []*x509.Certificate{server, client})
	wantPrefix := "Hash="
	if got[:len(wantPrefix)] != wantPrefix {
		t.Fatalf("XFCC starts %q, want Hash= first", got[:20])
	}
	wantTail := `Subject="CN=proxy";URI=spiffe://acme.test/proxy;URI=spiffe://acme.test/edge;DNS=proxy.acme.test`
	if got[len(got)-len(wantTail):] != wantTail {
		t.Fatalf("XFCC tail %q, want %q", got[len(got)-len(wantTail):], wantTail)
	}
	chain := `Chain="` + urlEncodedPEM(server) + urlEncodedPEM(client) + `"`
	if !strings.Contains(got, chain) {
		t.Fatal("Chain does not hold every certificate the peer sent, in order")
	}
}

func TestRFC2253(t *testing.T) {
	client := loadCert(t, "testdata/xfcc-client.pem")
	// What `openssl x509 -nameopt RFC2253 -subject` prints for this file.
	want := `DC=acme,CN=\#alice \"the\" \<admin\>\; \C3\A9\ +UID=a1,OU=Pay\+Ops,O=Acme\, Inc.,C=US`
	if got := rfc2253(client.RawSubject); got != want {
		t.Fatalf("rfc2253\n got: %s\nwant: %s", got, want)
	}
	mk := func(atvs ...attrTypeValue) []byte {
		var rdns []rdnSET
		for _, a := range atvs {
			rdns = append(rdns, rdnSET{a})
		}
		b, err := asn1.Marshal(rdns)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	str := func(tag int, s string) asn1.RawValue {
		b, _ := asn1.Marshal(asn1.RawValue{Tag: tag, Bytes: []byte(s)})
		return asn1.RawValue{FullBytes: b}
	}
	cases := []struct {
		name string
		der  []byte
		want string
	}{
		{"empty", mk(), ""},
		{"unknown OID dumped", mk(attrTypeValue{asn1.ObjectIdentifier{1, 2, 3, 4}, str(asn1.TagUTF8String, "x")}), "1.2.3.4=#0C0178"},
		{"control and DEL escaped", mk(attrTypeValue{asn1.ObjectIdentifier{2, 5, 4, 3}, str(asn1.TagUTF8String, "a\x01b\x7f")}), `CN=a\01b\7F`},
		{"trailing space and leading space", mk(attrTypeValue{asn1.ObjectIdentifier{2, 5, 4, 3}, str(asn1.TagPrintableString, " x ")}), `CN=\ x\ `},
		{"T61 read as Latin-1", mk(attrTypeValue{asn1.ObjectIdentifier{2, 5, 4, 10}, str(asn1.TagT61String, "\xe9")}), `O=\C3\A9`},
		{"BMPString", mk(attrTypeValue{asn1.ObjectIdentifier{2, 5, 4, 3}, str(asn1.TagBMPString, "\x00A\x00\xe9")}), `CN=A\C3\A9`},
		{"invalid UTF-8 stops after the type", mk(
			attrTypeValue{asn1.ObjectIdentifier{2, 5, 4, 6}, str(asn1.TagPrintableString, "US")},
			attrTypeValue{asn1.ObjectIdentifier{2, 5, 4, 3}, str(asn1.TagUTF8String, "\xff")}), "CN="},
		{"email and DC short names", mk(
			attrTypeValue{asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, str(asn1.TagIA5String, "com")},
			attrTypeValue{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, str(asn1.TagIA5String, "a@b.c")}), "emailAddress=a@b.c,DC=com"},
		{"equals sign is not escaped", mk(attrTypeValue{asn1.ObjectIdentifier{2, 5, 4, 3}, str(asn1.TagUTF8String, "a=b")}), "CN=a=b"},
	}
	for _, c := range cases {
		if got := rfc2253(c.der); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestSerialHex(t *testing.T) {
	for _, c := range []struct {
		n    *big.Int
		want string
	}{
		{big.NewInt(0), "0"}, {big.NewInt(0xff01), "ff01"}, {big.NewInt(0x0a0b), "0a0b"}, {big.NewInt(-5), "-05"},
	} {
		if got := serialHex(c.n); got != c.want {
			t.Errorf("serialHex(%v) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestExpandHeaderFormat(t *testing.T) {
	client := loadCert(t, "testdata/xfcc-client.pem")
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{client}}
	nb, na := client.NotBefore.UTC(), client.NotAfter.UTC()
	for _, c := range []struct{ format, want string }{
		{"%DOWNSTREAM_PEER_SERIAL%", "ff01"},
		{"%DOWNSTREAM_PEER_SUBJECT%", rfc2253(client.RawSubject)},
		{"%DOWNSTREAM_PEER_ISSUER%", `DC=acme,CN=\#alice \"the\" \<admin\>\; \C3\A9\ +UID=a1,OU=Pay\+Ops,O=Acme\, Inc.,C=US`},
		{"%DOWNSTREAM_PEER_CERT%", urlEncodedPEM(client)},
		{"NotBefore=%DOWNSTREAM_PEER_CERT_V_START(%Y-%m-%dT%H:%M:%SZ)%;NotAfter=%DOWNSTREAM_PEER_CERT_V_END(%Y-%m-%dT%H:%M:%SZ)%",
			"NotBefore=" + nb.Format("2006-01-02T15:04:05Z") + ";NotAfter=" + na.Format("2006-01-02T15:04:05Z")},
		{"%DOWNSTREAM_PEER_CERT_V_START%", nb.Format("2006-01-02T15:04:05.000Z")},
		{"100%% %DOWNSTREAM_PEER_SERIAL:2%", "100% ff"},
		{"%DOWNSTREAM_PEER_CERT_V_END(%s)%", big.NewInt(na.Unix()).String()},
	} {
		got, err := ExpandHeaderFormat(c.format, cs)
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.format, got, err, c.want)
		}
	}
	if got, err := ExpandHeaderFormat("NotBefore=%DOWNSTREAM_PEER_CERT_V_START(%Y)%", &tls.ConnectionState{}); err != nil || got != "NotBefore=" {
		t.Errorf("no peer certificate: got %q, %v; want %q", got, err, "NotBefore=")
	}
	for _, bad := range []string{
		"%DOWNSTREAM_REMOTE_ADDRESS%", "%UPSTREAM_HOST%", "50%", "%DOWNSTREAM_PEER_SERIAL(x)%",
		"%DOWNSTREAM_PEER_CERT_V_START(%Q)%", "%DOWNSTREAM_PEER_CERT_V_END(%Y%", "%START_TIME%",
	} {
		if err := CheckHeaderFormat(bad); err == nil {
			t.Errorf("CheckHeaderFormat(%q) = nil, want an error", bad)
		}
	}
	want := `header format "%UPSTREAM_HOST%": command %UPSTREAM_HOST% is not implemented by certplane proxy`
	if err := CheckHeaderFormat("%UPSTREAM_HOST%"); err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// TestXFCCFieldSets: each set_current_client_cert_details subset gives the
// golden value with exactly the other elements left out, in Envoy's order
// (By and Hash always there).
func TestXFCCFieldSets(t *testing.T) {
	client := loadCert(t, "testdata/xfcc-client.pem")
	server := loadCert(t, "testdata/xfcc-server.pem")
	golden, err := os.ReadFile("testdata/xfcc-golden.txt")
	if err != nil {
		t.Fatal(err)
	}
	g := string(golden)
	at := func(s string) int {
		i := strings.Index(g, s)
		if i < 0 {
			t.Fatalf("golden has no %q", s)
		}
		return i
	}
	cert, chain, subject, uri, dns := at(`;Cert="`), at(`;Chain="`), at(`;Subject="`), at(";URI="), at(";DNS=")
	head := g[:cert]
	for mask := 0; mask < 32; mask++ {
		f := XFCCFields{Cert: mask&1 != 0, Chain: mask&2 != 0, Subject: mask&4 != 0, URI: mask&8 != 0, DNS: mask&16 != 0}
		want := head
		for _, p := range []struct {
			on         bool
			start, end int
		}{{f.Cert, cert, chain}, {f.Chain, chain, subject}, {f.Subject, subject, uri}, {f.URI, uri, dns}, {f.DNS, dns, len(g)}} {
			if p.on {
				want += g[p.start:p.end]
			}
		}
		if got := XFCCWith(server, []*x509.Certificate{client}, f); got != want {
			t.Errorf("fields %+v:\n got %s\nwant %s", f, got, want)
		}
	}
	if XFCCWith(server, []*x509.Certificate{client}, AllXFCCFields) != g {
		t.Error("every field is not the golden value")
	}
}
