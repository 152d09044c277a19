package crl

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
)

// strictCase is one CRL per syntax rule, named after its defect, with
// Parse's verdict and x509.ParseRevocationList's: the table is the list of
// differences the package doc states.
type strictCase struct {
	name    string
	spec    spec
	want    error  // a sentinel Parse must wrap; nil: accepted, or wantMsg
	wantMsg string // a substring of Parse's error
	x509OK  bool   // x509.ParseRevocationList accepts it
	post    func(testing.TB, []byte) []byte
}

func (c strictCase) build(t testing.TB, ca *pki.CA) []byte {
	d := c.spec.build(t, ca)
	if c.post != nil {
		d = c.post(t, d)
	}
	return d
}

func strictCases(ca *pki.CA) []strictCase {
	now := time.Now().UTC().Truncate(time.Second)
	idp := func(content ...[]byte) []byte { return ext(oidIDP, true, der(cbasn1.SEQUENCE, content...)) }
	std := func(more ...[]byte) [][]byte {
		return append([][]byte{akiExt(ca.Cert.SubjectKeyId), numberExt(7, false)}, more...)
	}
	bigSerial, _ := new(big.Int).SetString("123456789012345678901234567890123456789012345678901234567890", 10)
	return []strictCase{
		{name: "valid", spec: spec{entries: [][]byte{entry(big.NewInt(5), now)}}, x509OK: true},
		{name: "trailing-after-crl", spec: spec{fileTail: []byte{0}}, want: ErrTrailingData, x509OK: true},
		{name: "trailing-after-signature", spec: spec{listTail: der(cbasn1.NULL)}, want: ErrTrailingData, x509OK: true},
		{name: "trailing-after-extensions", spec: spec{tbsTail: derInt(big.NewInt(5))}, want: ErrTrailingData, x509OK: true},
		// x509 stops at an element it does not expect and never sees the
		// critical extension behind it.
		{name: "extensions-hidden-behind-junk", spec: spec{afterNext: derInt(big.NewInt(5)), exts: std(ext(oidPrivate, true, der(cbasn1.NULL)))}, want: ErrTrailingData, x509OK: true},
		{name: "trailing-in-extension", spec: spec{exts: [][]byte{der(cbasn1.SEQUENCE, derOID(oidPrivate), der(cbasn1.OCTET_STRING), der(cbasn1.NULL))}}, want: ErrTrailingData, x509OK: true},
		{name: "trailing-in-crl-number", spec: spec{exts: [][]byte{ext(oidCRLNumber, false, append(derInt(big.NewInt(1)), 0))}}, want: ErrTrailingData, x509OK: true},
		{name: "trailing-in-aki", spec: spec{exts: [][]byte{ext(oidAKI, false, append(der(cbasn1.SEQUENCE), 0))}}, want: ErrTrailingData, x509OK: true},
		{name: "trailing-in-algorithm", spec: spec{sigAI: der(cbasn1.SEQUENCE, derOID(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}), der(cbasn1.NULL), der(cbasn1.NULL))}, want: ErrTrailingData, x509OK: true},
		{name: "trailing-in-entry", spec: spec{entries: [][]byte{der(cbasn1.SEQUENCE, derInt(big.NewInt(1)), utcTime(now), derInt(big.NewInt(2)))}}, want: ErrTrailingData, x509OK: true},
		{name: "trailing-in-reason", spec: spec{entries: [][]byte{entry(big.NewInt(1), now, ext(oidReasonEntry, false, append(der(cbasn1.ENUM, []byte{1}), 0)))}}, want: ErrTrailingData, x509OK: true},
		{name: "duplicate-crl-number", spec: spec{exts: std(numberExt(8, false))}, want: ErrDuplicateExtension, x509OK: true},
		{name: "duplicate-idp", spec: spec{exts: std(idp(), idp())}, want: ErrDuplicateExtension, x509OK: true},
		{name: "duplicate-entry-reason", spec: spec{entries: [][]byte{entry(big.NewInt(1), now, reasonExt(1, false), reasonExt(2, false))}}, want: ErrDuplicateExtension, x509OK: true},
		{name: "empty-crl-extensions", spec: spec{exts: [][]byte{}}, want: ErrEmptyExtensions, x509OK: true},
		{name: "empty-entry-extensions", spec: spec{entries: [][]byte{der(cbasn1.SEQUENCE, derInt(big.NewInt(1)), utcTime(now), der(cbasn1.SEQUENCE))}}, want: ErrEmptyExtensions, x509OK: true},
		{name: "thisupdate-offset", spec: spec{thisUpdate: der(cbasn1.UTCTime, []byte("250101000000+0100"))}, want: ErrTimeForm, x509OK: true},
		{name: "nextupdate-no-seconds", spec: spec{nextUpdate: der(cbasn1.UTCTime, []byte("4901010000Z"))}, want: ErrTimeForm, x509OK: true},
		{name: "thisupdate-fraction", spec: spec{thisUpdate: der(cbasn1.GeneralizedTime, []byte("20250101000000.5Z"))}, wantMsg: "malformed time"},
		{name: "thisupdate-bad-day", spec: spec{thisUpdate: der(cbasn1.UTCTime, []byte("250230000000Z"))}, wantMsg: "malformed time"},
		{name: "thisupdate-generalized", spec: spec{thisUpdate: genTime(now.Add(-time.Hour))}, x509OK: true},
		{name: "revocation-date-offset", spec: spec{entries: [][]byte{der(cbasn1.SEQUENCE, derInt(big.NewInt(1)), der(cbasn1.UTCTime, []byte("250101000000-0130")))}}, x509OK: true},
		{name: "signature-unused-bits", post: func(t testing.TB, d []byte) []byte { return withSignatureBits(t, d, 3) }, want: ErrSignatureBits, x509OK: true},
		{name: "idp-malformed", spec: spec{exts: std(ext(oidIDP, true, der(cbasn1.SEQUENCE, der(cbasn1.Tag(9).ContextSpecific()))))}, want: ErrExtensionSyntax, x509OK: true},
		{name: "idp-not-a-sequence", spec: spec{exts: std(ext(oidIDP, true, der(cbasn1.NULL)))}, want: ErrExtensionSyntax, x509OK: true},
		{name: "idp-bad-boolean", spec: spec{exts: std(idp(der(cbasn1.Tag(1).ContextSpecific(), []byte{1})))}, want: ErrExtensionSyntax, x509OK: true},
		{name: "idp-bad-general-name", spec: spec{exts: std(idp(der(cbasn1.Tag(0).ContextSpecific().Constructed(), der(cbasn1.Tag(0).ContextSpecific().Constructed(), der(cbasn1.Tag(6).ContextSpecific().Constructed())))))}, want: ErrExtensionSyntax, x509OK: true},
		{name: "aki-constructed-keyid", spec: spec{exts: [][]byte{ext(oidAKI, false, der(cbasn1.SEQUENCE, der(cbasn1.Tag(0).ContextSpecific().Constructed())))}}, want: ErrExtensionSyntax, x509OK: true},
		{name: "aki-critical", spec: spec{exts: [][]byte{ext(oidAKI, true, der(cbasn1.SEQUENCE))}}, wantMsg: "incorrectly marked critical"},
		{name: "aki-not-a-sequence", spec: spec{exts: [][]byte{ext(oidAKI, false, der(cbasn1.NULL))}}, wantMsg: "invalid authority key identifier"},
		{name: "crl-number-non-minimal", spec: spec{exts: [][]byte{ext(oidCRLNumber, false, der(cbasn1.INTEGER, []byte{0, 1}))}}, wantMsg: "malformed CRL number"},
		{name: "v1-no-version", spec: spec{noVersion: true, noExts: true}, wantMsg: "v1 CRL"},
		{name: "version-3", spec: spec{version: derInt(big.NewInt(2))}, wantMsg: "unsupported version 2"},
		{name: "algorithm-mismatch", spec: spec{outerAI: der(cbasn1.SEQUENCE, derOID(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}))}, wantMsg: "don't match"},
		{name: "unknown-algorithm", spec: spec{sigAI: der(cbasn1.SEQUENCE, derOID(oidPrivate))}, x509OK: true},
		{name: "serial-non-minimal", spec: spec{entries: [][]byte{der(cbasn1.SEQUENCE, der(cbasn1.INTEGER, []byte{0, 5}), utcTime(now))}}, wantMsg: "malformed serial"},
		{name: "serial-empty", spec: spec{entries: [][]byte{der(cbasn1.SEQUENCE, der(cbasn1.INTEGER), utcTime(now))}}, wantMsg: "malformed serial"},
		{name: "serial-negative", spec: spec{entries: [][]byte{entry(big.NewInt(-5), now)}}, x509OK: true},
		{name: "serial-zero", spec: spec{entries: [][]byte{entry(big.NewInt(0), now)}}, x509OK: true},
		{name: "serial-over-20-octets", spec: spec{entries: [][]byte{entry(bigSerial, now)}}, x509OK: true},
		{name: "reason-not-enumerated", spec: spec{entries: [][]byte{entry(big.NewInt(1), now, ext(oidReasonEntry, false, derInt(big.NewInt(1))))}}, wantMsg: "malformed reasonCode"},
		{name: "entry-extension-bad-oid", spec: spec{entries: [][]byte{entry(big.NewInt(1), now, der(cbasn1.SEQUENCE, der(cbasn1.OBJECT_IDENTIFIER, []byte{0x80, 0x01}), der(cbasn1.OCTET_STRING)))}}, wantMsg: "malformed extension"},
		{name: "issuer-bad-printable", spec: spec{issuer: der(cbasn1.SEQUENCE, der(cbasn1.SET, der(cbasn1.SEQUENCE, derOID(asn1.ObjectIdentifier{2, 5, 4, 3}), der(cbasn1.PrintableString, []byte("a@b")))))}, wantMsg: "issuer"},
		{name: "empty-revoked-list", spec: spec{emptyList: true}, x509OK: true},
		{name: "no-next-update", spec: spec{noNext: true}, x509OK: true},
	}
}

// TestParseStrict checks every strictCase against both parsers.
func TestParseStrict(t *testing.T) {
	ca := pkitest.NewCA(t, "Strict Root").CA
	for _, c := range strictCases(ca) {
		t.Run(c.name, func(t *testing.T) {
			d := c.build(t, ca)
			_, xerr := x509.ParseRevocationList(d)
			if (xerr == nil) != c.x509OK {
				t.Fatalf("x509.ParseRevocationList: %v; the table says accepted=%v", xerr, c.x509OK)
			}
			_, _, err := collect(d)
			switch {
			case c.want == nil && c.wantMsg == "":
				if err != nil {
					t.Fatalf("Parse: %v; want accepted", err)
				}
			case c.want != nil && !errors.Is(err, c.want):
				t.Fatalf("Parse: %v; want %v", err, c.want)
			case c.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), c.wantMsg)):
				t.Fatalf("Parse: %v; want an error containing %q", err, c.wantMsg)
			}
			if d := crossCheck(d); d != "" {
				t.Fatal(d)
			}
		})
	}
}

// withSignatureBits rewrites the signature BIT STRING of d to declare bits
// unused bits, clearing them so that the encoding stays valid DER.
func withSignatureBits(t testing.TB, d []byte, bits byte) []byte {
	t.Helper()
	s := cryptobyte.String(d)
	var list, tbs, ai, sig cryptobyte.String
	if !s.ReadASN1(&list, cbasn1.SEQUENCE) || !list.ReadASN1Element(&tbs, cbasn1.SEQUENCE) || !list.ReadASN1Element(&ai, cbasn1.SEQUENCE) || !list.ReadASN1(&sig, cbasn1.BIT_STRING) {
		t.Fatal("cannot split CRL")
	}
	body := append([]byte{bits}, sig[1:]...)
	body[len(body)-1] &^= 1<<bits - 1
	return der(cbasn1.SEQUENCE, tbs, ai, der(cbasn1.BIT_STRING, body))
}

func TestParseFields(t *testing.T) {
	ca := pkitest.NewCA(t, "Fields Root").CA
	now := time.Now().UTC().Truncate(time.Second)
	uri := der(cbasn1.Tag(6).ContextSpecific(), []byte("http://crl.example/root.crl"))
	dn := der(cbasn1.Tag(4).ContextSpecific().Constructed(), ca.Cert.RawIssuer)
	d := spec{
		entries: [][]byte{
			entry(big.NewInt(300), now.Add(-time.Minute), reasonExt(1, false)),
			entry(big.NewInt(-2), now.Add(-2*time.Minute), ext(oidInvalidity, false, genTime(now))),
			entry(big.NewInt(7), now, reasonExt(4, true)),
		},
		exts: [][]byte{
			ext(oidAKI, false, der(cbasn1.SEQUENCE, der(cbasn1.Tag(0).ContextSpecific(), ca.Cert.SubjectKeyId),
				der(cbasn1.Tag(1).ContextSpecific().Constructed(), uri, dn), der(cbasn1.Tag(2).ContextSpecific(), AppendSerial(nil, ca.Cert.SerialNumber)))),
			numberExt(42, true),
			ext(oidIDP, true, der(cbasn1.SEQUENCE,
				der(cbasn1.Tag(0).ContextSpecific().Constructed(), der(cbasn1.Tag(0).ContextSpecific().Constructed(), uri)),
				der(cbasn1.Tag(1).ContextSpecific(), []byte{0xff}))),
			ext(oidFreshest, false, der(cbasn1.SEQUENCE)),
			ext(oidDelta, true, derInt(big.NewInt(41))),
		},
	}.build(t, ca)
	s, entries, err := collect(d)
	if err != nil {
		t.Fatal(err)
	}
	if s.Number.Int64() != 42 || s.Entries != 3 || !s.Delta || !s.Freshest || s.SHA256 == [32]byte{} {
		t.Errorf("summary %+v", s)
	}
	if !bytes.Equal(s.AuthorityKeyID, ca.Cert.SubjectKeyId) || !bytes.Equal(s.AuthorityCertIssuer, ca.Cert.RawIssuer) || !bytes.Equal(s.AuthorityCertSerial, AppendSerial(nil, ca.Cert.SerialNumber)) {
		t.Errorf("AKI %x %x %x", s.AuthorityKeyID, s.AuthorityCertIssuer, s.AuthorityCertSerial)
	}
	if s.IDP == nil || !s.IDP.Critical || !s.IDP.OnlyUser || s.IDP.OnlyCA || len(s.IDP.URIs) != 1 || s.IDP.URIs[0] != "http://crl.example/root.crl" || s.IDP.DistributionPoint == nil {
		t.Errorf("IDP %+v", s.IDP)
	}
	if len(s.Critical) != 2 || !s.Critical[0].Equal(oidCRLNumber) || !s.Critical[1].Equal(oidDelta) {
		t.Errorf("Critical %v; want CRL number and delta indicator (IDP is handled)", s.Critical)
	}
	if s.CriticalEntry == nil || s.CriticalEntry.Index != 3 || !s.CriticalEntry.OID.Equal(oidReasonEntry) || !bytes.Equal(s.CriticalEntry.Serial, []byte{7}) {
		t.Errorf("CriticalEntry %+v", s.CriticalEntry)
	}
	want := []Entry{{Serial: []byte{0x01, 0x2c}, RevokedAt: now.Add(-time.Minute), Reason: 1}, {Serial: []byte{0xfe}, RevokedAt: now.Add(-2 * time.Minute), Reason: -1}, {Serial: []byte{7}, RevokedAt: now, Reason: 4}}
	for i, e := range entries {
		if !bytes.Equal(e.Serial, want[i].Serial) || !e.RevokedAt.Equal(want[i].RevokedAt) || e.Reason != want[i].Reason {
			t.Errorf("entry %d: %+v; want %+v", i, e, want[i])
		}
	}
	if diff := crossCheck(d); diff != "" {
		t.Error(diff)
	}
	s.Release()
	if err := s.CheckSignatureFrom(ca.Cert); !errors.Is(err, ErrReleased) {
		t.Errorf("CheckSignatureFrom after Release: %v", err)
	}
}

func TestParseVisitError(t *testing.T) {
	ca := pkitest.NewCA(t, "Visit Root")
	for range 3 {
		ca.Revoke(ca.Client("c"))
	}
	stop := errors.New("index full")
	n := 0
	_, err := Parse(ca.CRL(), func(Entry) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !strings.Contains(err.Error(), "entry 2") || n != 2 {
		t.Fatalf("Parse: %v after %d entries; want the visitor's error at entry 2", err, n)
	}
}

// TestReadTime checks the allocation-free time decoder against cryptobyte,
// which x509 uses, on random and edge inputs in both tags.
func TestReadTime(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	edge := []string{"000101000000Z", "491231235959Z", "500101000000Z", "991231235959Z", "000229000000Z", "010229000000Z",
		"520229000000Z", "000230000000Z", "001301000000Z", "000100000000Z", "000101240000Z", "000101006000Z", "000101000060Z",
		"00010100000Z", "0001010000Z", "000101000000+0000", "000101000000-0130", "0001010000+0100", " 00101000000Z"}
	gedge := []string{"00000229000000Z", "19000229000000Z", "20000229000000Z", "99991231235959Z", "20250101000000.5Z", "2025010100000Z"}
	check := func(tag cbasn1.Tag, v []byte) {
		elem := der(tag, v)
		var want time.Time
		w := cryptobyte.String(elem)
		wantOK := tag == cbasn1.UTCTime && w.ReadASN1UTCTime(&want) || tag == cbasn1.GeneralizedTime && w.ReadASN1GeneralizedTime(&want)
		s := cryptobyte.String(elem)
		got, err := readTime(&s, false)
		if (err == nil) != wantOK || wantOK && (!got.Equal(want) || got.Location().String() != want.Location().String() && got.Location() == time.UTC) {
			t.Fatalf("%q: readTime %v, %v; cryptobyte %v, %v", v, got, err, want, wantOK)
		}
		s = cryptobyte.String(elem)
		if _, err := readTime(&s, true); err == nil && len(v) != 13 && len(v) != 15 {
			t.Fatalf("%q: strict readTime accepted a non-RFC 5280 form", v)
		}
	}
	for _, e := range edge {
		check(cbasn1.UTCTime, []byte(e))
	}
	for _, e := range gedge {
		check(cbasn1.GeneralizedTime, []byte(e))
	}
	for range 20000 {
		for _, tag := range []cbasn1.Tag{cbasn1.UTCTime, cbasn1.GeneralizedTime} {
			n := 13
			if tag == cbasn1.GeneralizedTime {
				n = 15
			}
			v := make([]byte, n)
			for i := range v {
				v[i] = byte('0' + r.IntN(10))
				if r.IntN(3) > 0 { // mostly plausible digits
					v[i] = "0123"[r.IntN(4)]
				}
			}
			v[n-1] = 'Z'
			if r.IntN(20) == 0 {
				v[r.IntN(n)] = byte(r.IntN(128))
			}
			check(tag, v)
		}
	}
}

// TestValidOID checks the allocation-free OID check against cryptobyte.
func TestValidOID(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 50000 {
		v := make([]byte, r.IntN(8))
		for i := range v {
			v[i] = []byte{0x80, 0x81, 0xff, 0x7f, 0x00, 0x55, 0x1d, 0x87}[r.IntN(8)]
		}
		s := cryptobyte.String(der(cbasn1.OBJECT_IDENTIFIER, v))
		var oid asn1.ObjectIdentifier
		if want := s.ReadASN1ObjectIdentifier(&oid); validOID(v) != want {
			t.Fatalf("validOID(%x) = %v, cryptobyte %v", v, !want, want)
		}
	}
}

func TestAppendSerial(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 255, 256, -1, -127, -128, -129, -255, -256, -32768, -32769, 1 << 40, -(1 << 40)} {
		n := big.NewInt(v)
		want, err := asn1.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendSerial([]byte("x"), n); !bytes.Equal(got[1:], want[2:]) || got[0] != 'x' {
			t.Errorf("AppendSerial(%d) = %x; want %x", v, got[1:], want[2:])
		}
		if serialInt(want[2:]).Cmp(n) != 0 {
			t.Errorf("serialInt(%x) != %d", want[2:], v)
		}
	}
	if got := AppendSerial(nil, nil); len(got) != 0 {
		t.Errorf("AppendSerial(nil) = %x", got)
	}
}
