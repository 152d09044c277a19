package crl

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
)

// TestAdmit runs one CRL per admission rule, each named after its defect,
// through Admit against a trust store, and wants the rule's verdict: the
// refusal it must wrap, or acceptance with the problems it must report.
func TestAdmit(t *testing.T) {
	root := pkitest.NewCA(t, "Admit Root")
	inter := root.Intermediate("Admit Issuing CA")
	noCRLSign := rawCA(t, "No cRLSign CA", func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCertSign })
	noKU := rawCA(t, "No Key Usage CA", func(c *x509.Certificate) { c.KeyUsage = 0 })
	notCA := rawCA(t, "Not A CA", func(c *x509.Certificate) { c.IsCA = false })
	impostor := root.Impostor()
	stranger := pkitest.NewCA(t, "Stranger CA")
	store := []*x509.Certificate{root.Cert, inter.Cert, noCRLSign.Cert, noKU.Cert, notCA.Cert}

	now := time.Now().UTC().Truncate(time.Second)
	at := now.Add(-time.Hour)
	extra := func(exts ...pkix.Extension) *x509.RevocationList {
		return &x509.RevocationList{ExtraExtensions: exts}
	}
	crit := func(oid []int, value []byte) pkix.Extension {
		return pkix.Extension{Id: oid, Critical: true, Value: value}
	}
	idp := func(content ...[]byte) pkix.Extension {
		return crit(oidIDP, der(cbasn1.SEQUENCE, content...))
	}
	uri := der(cbasn1.Tag(6).ContextSpecific(), []byte("http://crl.example/inter.crl"))
	flag := func(n int) []byte { return der(cbasn1.Tag(n).ContextSpecific(), []byte{0xff}) }
	entryExt := func(e pkix.Extension) *x509.RevocationList {
		return &x509.RevocationList{RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: big.NewInt(9), RevocationTime: at, ExtraExtensions: []pkix.Extension{e}},
		}}
	}

	cases := []struct {
		name     string
		crl      func() []byte
		issuer   *pki.CA // want admitted with this issuer
		refused  error   // or refused with this
		problems []error // and these problems
	}{
		{name: "valid-root", crl: func() []byte { return root.CRL() }, issuer: root.CA},
		{name: "valid-intermediate", crl: func() []byte { return inter.CRL() }, issuer: inter.CA},
		// The impostor's own CRL names another key in its AKI; with the
		// right AKI copied in, the signature check is what refuses it.
		{name: "crl-wrong-signer", crl: func() []byte { return impostor.CRL() }, refused: ErrAKIMismatch},
		{name: "crl-wrong-signer-copied-aki", crl: func() []byte {
			return spec{exts: [][]byte{akiExt(root.Cert.SubjectKeyId), numberExt(1, false)}}.build(t, impostor.CA)
		}, refused: ErrSignature},
		{name: "crl-of-a-ca-outside-the-store", crl: func() []byte { return stranger.CRL() }, refused: ErrNoIssuer},
		{name: "issuer-without-crlsign", crl: func() []byte { return createCRL(t, noCRLSign, &x509.RevocationList{}) }, refused: ErrNoCRLSign},
		{name: "issuer-without-key-usage", crl: func() []byte { return createCRL(t, noKU, &x509.RevocationList{}) }, issuer: noKU},
		{name: "issuer-not-a-ca", crl: func() []byte { return createCRL(t, notCA, &x509.RevocationList{}) }, refused: ErrNotCA},
		{name: "aki-mismatch", crl: func() []byte {
			return spec{exts: [][]byte{akiExt([]byte("other key")), numberExt(1, false)}}.build(t, root.CA)
		}, refused: ErrAKIMismatch},
		{name: "aki-serial-mismatch", crl: func() []byte {
			aki := der(cbasn1.SEQUENCE, der(cbasn1.Tag(2).ContextSpecific(), []byte{0x7f}))
			return spec{exts: [][]byte{ext(oidAKI, false, aki), numberExt(1, false)}}.build(t, root.CA)
		}, refused: ErrAKIMismatch},
		{name: "aki-without-key-id", crl: func() []byte {
			return spec{exts: [][]byte{ext(oidAKI, false, der(cbasn1.SEQUENCE)), numberExt(1, false)}}.build(t, root.CA)
		}, issuer: root.CA},
		// config/trust.go accepted these three; BoringSSL handles only IDP
		// and AKI as critical CRL extensions (x_crl.cc crl_cb).
		{name: "critical-crl-number", crl: func() []byte {
			return spec{exts: [][]byte{akiExt(root.Cert.SubjectKeyId), numberExt(1, true)}}.build(t, root.CA)
		}, refused: ErrUnhandledCritical},
		{name: "critical-freshest-crl", crl: func() []byte {
			return createCRL(t, root.CA, extra(crit(oidFreshest, der(cbasn1.SEQUENCE))))
		}, refused: ErrUnhandledCritical},
		{name: "critical-authority-info-access", crl: func() []byte {
			return createCRL(t, root.CA, extra(crit(oidAIA, der(cbasn1.SEQUENCE))))
		}, refused: ErrUnhandledCritical},
		{name: "critical-unknown-extension", crl: func() []byte {
			return createCRL(t, root.CA, extra(crit(oidPrivate, der(cbasn1.NULL))))
		}, refused: ErrUnhandledCritical},
		{name: "noncritical-unknown-extension", crl: func() []byte {
			return createCRL(t, root.CA, extra(pkix.Extension{Id: oidPrivate, Value: der(cbasn1.NULL)}))
		}, issuer: root.CA},
		{name: "delta-crl", crl: func() []byte {
			return createCRL(t, root.CA, extra(crit(oidDelta, derInt(big.NewInt(1)))))
		}, refused: ErrDelta},
		{name: "delta-crl-noncritical", crl: func() []byte {
			return createCRL(t, root.CA, extra(pkix.Extension{Id: oidDelta, Value: derInt(big.NewInt(1))}))
		}, refused: ErrDelta},
		// config/trust.go accepted a critical reasonCode or invalidityDate;
		// BoringSSL handles no critical entry extension.
		{name: "critical-entry-reason", crl: func() []byte {
			return spec{entries: [][]byte{entry(big.NewInt(9), at, reasonExt(1, true))}}.build(t, root.CA)
		}, refused: ErrCriticalEntry},
		{name: "critical-entry-invalidity-date", crl: func() []byte {
			return createCRL(t, root.CA, entryExt(crit(oidInvalidity, genTime(at))))
		}, refused: ErrCriticalEntry},
		{name: "critical-entry-certificate-issuer", crl: func() []byte {
			return createCRL(t, root.CA, entryExt(crit(oidCertIssuer, der(cbasn1.SEQUENCE))))
		}, refused: ErrCriticalEntry},
		{name: "noncritical-entry-invalidity-date", crl: func() []byte {
			return createCRL(t, root.CA, entryExt(pkix.Extension{Id: oidInvalidity, Value: genTime(at)}))
		}, issuer: root.CA},
		{name: "idp-indirect", crl: func() []byte { return createCRL(t, root.CA, extra(idp(flag(4)))) }, refused: ErrIndirect},
		{name: "idp-only-some-reasons", crl: func() []byte {
			return createCRL(t, root.CA, extra(idp(der(cbasn1.Tag(3).ContextSpecific(), []byte{7, 0x80}))))
		}, refused: ErrReasonPartition},
		{name: "idp-only-some-reasons-no-bits", crl: func() []byte {
			return createCRL(t, root.CA, extra(idp(der(cbasn1.Tag(3).ContextSpecific(), []byte{0}))))
		}, refused: ErrReasonPartition},
		{name: "idp-only-attribute-certs", crl: func() []byte { return createCRL(t, root.CA, extra(idp(flag(5)))) }, refused: ErrAttributeCRL},
		{name: "idp-only-user-and-only-ca", crl: func() []byte { return createCRL(t, root.CA, extra(idp(flag(1), flag(2)))) }, refused: ErrInvalidIDP},
		{name: "idp-only-user", crl: func() []byte { return createCRL(t, root.CA, extra(idp(flag(1)))) }, issuer: root.CA},
		{name: "idp-distribution-point", crl: func() []byte {
			dp := der(cbasn1.Tag(0).ContextSpecific().Constructed(), der(cbasn1.Tag(0).ContextSpecific().Constructed(), uri))
			return createCRL(t, inter.CA, extra(idp(dp)))
		}, issuer: inter.CA},
		{name: "expired", crl: func() []byte { return root.CRL(pkitest.CRLExpired()) }, issuer: root.CA, problems: []error{ErrExpired}},
		{name: "not-yet-valid", crl: func() []byte { return root.CRL(pkitest.CRLNotYetValid()) }, issuer: root.CA, problems: []error{ErrNotYetValid}},
		{name: "next-update-is-now", crl: func() []byte { return root.CRL(pkitest.CRLTimes(now.Add(-time.Hour), now)) }, issuer: root.CA, problems: []error{ErrExpired}},
		{name: "this-update-is-now", crl: func() []byte { return root.CRL(pkitest.CRLTimes(now, now.Add(time.Hour))) }, issuer: root.CA},
		{name: "no-next-update", crl: func() []byte { return spec{noNext: true}.build(t, root.CA) }, issuer: root.CA},
		{name: "no-crl-number", crl: func() []byte {
			return spec{exts: [][]byte{akiExt(root.Cert.SubjectKeyId)}}.build(t, root.CA)
		}, issuer: root.CA, problems: []error{ErrNoNumber}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse(c.crl(), nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			issuer, problems, err := Admit(s, store, now.Add(500*time.Millisecond))
			if c.refused != nil {
				if !errors.Is(err, c.refused) || issuer != nil {
					t.Fatalf("Admit: issuer %v, %v; want refused with %v", issuer, err, c.refused)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil || issuer != c.issuer.Cert {
				t.Fatalf("Admit: issuer %v, %v; want admitted, issued by %s", issuer, err, c.issuer.Cert.Subject)
			}
			if len(problems) != len(c.problems) {
				t.Fatalf("problems %v; want %v", problems, c.problems)
			}
			for i, p := range problems {
				if !errors.Is(p, c.problems[i]) {
					t.Errorf("problem %d: %v; want %v", i, p, c.problems[i])
				}
			}
		})
	}
}

// TestAdmitPicksTheSigner: two CAs share the CRL issuer's name; only the
// second holds the key. Admit must pass over the first.
func TestAdmitPicksTheSigner(t *testing.T) {
	root := pkitest.NewCA(t, "Shared Name")
	s, err := Parse(root.CRL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	issuer, _, err := Admit(s, []*x509.Certificate{root.Impostor().Cert, root.Cert}, time.Now())
	if err != nil || issuer != root.Cert {
		t.Fatalf("Admit: %v, %v; want the real root", issuer, err)
	}
}

func TestNewer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	crl := func(number int64, this time.Time) *Summary {
		s := &Summary{ThisUpdate: this}
		if number >= 0 {
			s.Number = big.NewInt(number)
		}
		return s
	}
	cases := []struct {
		name string
		a, b *Summary
		want bool
	}{
		{"higher number", crl(2, t0), crl(1, t0), true},
		{"higher number, older thisUpdate", crl(2, t0), crl(1, t0.Add(time.Hour)), true},
		{"lower number", crl(1, t0.Add(time.Hour)), crl(2, t0), false},
		{"same number, later thisUpdate", crl(1, t0.Add(time.Hour)), crl(1, t0), true},
		{"same CRL", crl(1, t0), crl(1, t0), false},
		{"no numbers, later thisUpdate", crl(-1, t0.Add(time.Second)), crl(-1, t0), true},
		{"one number, earlier thisUpdate", crl(5, t0), crl(-1, t0.Add(time.Second)), false},
	}
	for _, c := range cases {
		if got := Newer(c.a, c.b); got != c.want {
			t.Errorf("%s: Newer = %v; want %v", c.name, got, c.want)
		}
	}
}
