package crl

import (
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/certplane/certplane/pki/pkitest"
)

// FuzzParseCRL cross-checks Parse against x509.ParseRevocationList: when
// x509 accepts, Parse accepts with the same issuer, number, dates,
// signature material and entries, or refuses for a documented reason
// (stricter); Parse never accepts what x509 refuses (laxer lists no
// class). Nothing panics: not Parse, not Blocks on the same bytes as text,
// not Admit on what Parse accepts.
//
//	go test -fuzz=FuzzParseCRL ./crl
func FuzzParseCRL(f *testing.F) {
	root := pkitest.NewCA(f, "Fuzz Root")
	for range 3 {
		root.Revoke(root.Client("revoked"))
	}
	f.Add(root.CRL())
	f.Add(root.CRLPEM())
	f.Add(pkitest.NewCA(f, "Fuzz Empty").CRL())
	f.Add(createCRL(f, root.CA, &x509.RevocationList{RevokedCertificateEntries: []x509.RevocationListEntry{
		{SerialNumber: big.NewInt(-1), RevocationTime: time.Now(), ReasonCode: 4},
	}}))
	for _, c := range strictCases(root.CA) {
		f.Add(c.build(f, root.CA))
	}
	cas := []*x509.Certificate{root.Cert}
	now := time.Now()
	f.Fuzz(func(t *testing.T, der []byte) {
		if d := crossCheck(der); d != "" {
			t.Fatal(d)
		}
		_ = Blocks(der, func(b Block) error {
			if s, err := Parse(b.DER, nil); err == nil {
				_, _, _ = Admit(s, cas, now)
				_ = Newer(s, s)
			}
			return nil
		})
	})
}
