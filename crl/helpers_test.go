package crl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certplane/certplane/pki"
)

// conformanceDir returns ../shared/conformance/<sub> beside the
// repository, or skips the test when it is absent (a user's clone has no
// shared folder).
func conformanceDir(t testing.TB, sub string) string {
	t.Helper()
	d := filepath.Join(repoRoot(t), "..", "shared", "conformance", sub)
	if _, err := os.Stat(d); err != nil {
		t.Skipf("conformance data %s absent: %v", d, err)
	}
	return d
}

// Test OIDs beyond the ones the package names.
var (
	oidAIA         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidPrivate     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
	oidCertIssuer  = asn1.ObjectIdentifier{2, 5, 29, 29}
	oidReasonEntry = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidity  = asn1.ObjectIdentifier{2, 5, 29, 24}
)

// der builds one DER element.
func der(tag cbasn1.Tag, content ...[]byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(tag, func(b *cryptobyte.Builder) {
		for _, c := range content {
			b.AddBytes(c)
		}
	})
	return b.BytesOrPanic()
}

func derInt(n *big.Int) []byte { return der(cbasn1.INTEGER, AppendSerial(nil, n)) }

func derOID(oid asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(oid)
	if err != nil {
		panic(err)
	}
	return b
}

func utcTime(t time.Time) []byte {
	return der(cbasn1.UTCTime, []byte(t.UTC().Format("060102150405Z")))
}

func genTime(t time.Time) []byte {
	return der(cbasn1.GeneralizedTime, []byte(t.UTC().Format("20060102150405Z")))
}

// ext builds an Extension; value is the DER inside the OCTET STRING.
func ext(oid asn1.ObjectIdentifier, critical bool, value []byte) []byte {
	parts := [][]byte{derOID(oid)}
	if critical {
		parts = append(parts, []byte{0x01, 0x01, 0xff})
	}
	return der(cbasn1.SEQUENCE, append(parts, der(cbasn1.OCTET_STRING, value))...)
}

func numberExt(n int64, critical bool) []byte {
	return ext(oidCRLNumber, critical, derInt(big.NewInt(n)))
}

func akiExt(keyID []byte) []byte {
	return ext(oidAKI, false, der(cbasn1.SEQUENCE, der(cbasn1.Tag(0).ContextSpecific(), keyID)))
}

func reasonExt(reason int64, critical bool) []byte {
	return ext(oidReasonEntry, critical, der(cbasn1.ENUM, big.NewInt(reason).Bytes()))
}

// entry builds a revokedCertificates element.
func entry(serial *big.Int, at time.Time, exts ...[]byte) []byte {
	parts := [][]byte{derInt(serial), utcTime(at)}
	if len(exts) > 0 {
		parts = append(parts, der(cbasn1.SEQUENCE, exts...))
	}
	return der(cbasn1.SEQUENCE, parts...)
}

// spec is a CRL built byte by byte, for the defects that
// x509.CreateRevocationList cannot make (a critical CRL number, no CRL
// number, trailing data, odd times...). Zero fields take defaults: version
// 2, the signer's subject, thisUpdate an hour ago, nextUpdate in a day, AKI
// and CRL number 1.
type spec struct {
	noVersion  bool
	version    []byte // raw version element
	sigAI      []byte // raw AlgorithmIdentifier in the TBS
	outerAI    []byte // raw AlgorithmIdentifier outside; defaults to sigAI
	issuer     []byte
	thisUpdate []byte
	nextUpdate []byte
	noNext     bool
	entries    [][]byte
	emptyList  bool     // an empty revokedCertificates SEQUENCE
	exts       [][]byte // replaces the default extensions
	noExts     bool
	tbsTail    []byte // after the extensions, inside TBSCertList
	afterNext  []byte // between nextUpdate and the rest
	listTail   []byte // after the signature
	fileTail   []byte // after the CertificateList
}

var ecdsaSHA256 = der(cbasn1.SEQUENCE, derOID(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}))

// build signs the CRL with ca's key (ECDSA P-256 with SHA-256).
func (sp spec) build(t testing.TB, ca *pki.CA) []byte {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	or := func(v, def []byte) []byte {
		if v == nil {
			return def
		}
		return v
	}
	sigAI := or(sp.sigAI, ecdsaSHA256)
	var tbs [][]byte
	if !sp.noVersion {
		tbs = append(tbs, or(sp.version, derInt(big.NewInt(1))))
	}
	tbs = append(tbs, sigAI, or(sp.issuer, ca.Cert.RawSubject), or(sp.thisUpdate, utcTime(now.Add(-time.Hour))))
	if !sp.noNext {
		tbs = append(tbs, or(sp.nextUpdate, utcTime(now.Add(24*time.Hour))))
	}
	tbs = append(tbs, sp.afterNext)
	if len(sp.entries) > 0 || sp.emptyList {
		tbs = append(tbs, der(cbasn1.SEQUENCE, sp.entries...))
	}
	if !sp.noExts {
		exts := sp.exts
		if exts == nil {
			exts = [][]byte{akiExt(ca.Cert.SubjectKeyId), numberExt(1, false)}
		}
		tbs = append(tbs, der(cbasn1.Tag(0).ContextSpecific().Constructed(), der(cbasn1.SEQUENCE, exts...)))
	}
	tbs = append(tbs, sp.tbsTail)
	tbsDER := der(cbasn1.SEQUENCE, tbs...)
	h := sha256.Sum256(tbsDER)
	sig, err := ca.Key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	list := der(cbasn1.SEQUENCE, tbsDER, or(sp.outerAI, sigAI), der(cbasn1.BIT_STRING, []byte{0}, sig), sp.listTail)
	return append(list, sp.fileTail...)
}

// rawCA makes a self-signed ECDSA CA from a template that edit may break
// in ways pki refuses to (no cRLSign, no key usage, CA:FALSE).
func rawCA(t testing.TB, name string, edit func(*x509.Certificate)) *pki.CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          []byte{1, 2, 3, 4},
	}
	if edit != nil {
		edit(tmpl)
	}
	d, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(d)
	if err != nil {
		t.Fatal(err)
	}
	return &pki.CA{Cert: cert, Key: key}
}

// createCRL is x509.CreateRevocationList signed by ca, whatever ca's key
// usage: x509 refuses to sign for an issuer without cRLSign, which is the
// very CRL the no-cRLSign rule must refuse.
func createCRL(t testing.TB, ca *pki.CA, tmpl *x509.RevocationList) []byte {
	t.Helper()
	issuer := *ca.Cert
	issuer.KeyUsage |= x509.KeyUsageCRLSign
	if len(issuer.SubjectKeyId) == 0 {
		issuer.SubjectKeyId = []byte{0}
	}
	if tmpl.Number == nil {
		tmpl.Number = big.NewInt(1)
	}
	if tmpl.ThisUpdate.IsZero() {
		tmpl.ThisUpdate = time.Now().Add(-time.Hour)
	}
	if tmpl.NextUpdate.IsZero() {
		tmpl.NextUpdate = tmpl.ThisUpdate.Add(48 * time.Hour)
	}
	d, err := x509.CreateRevocationList(rand.Reader, tmpl, &issuer, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// collect parses der and returns the summary and the entries.
func collect(der []byte) (*Summary, []Entry, error) {
	var entries []Entry
	s, err := Parse(der, func(e Entry) error {
		e.Serial = append([]byte(nil), e.Serial...)
		entries = append(entries, e)
		return nil
	})
	return s, entries, err
}
