package pki

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"net/url"
	"strings"
	"testing"
	"unicode/utf16"
)

// The PKCS#12 structures of RFC 7292, decoded here with encoding/asn1 alone
// so the test does not trust the encoder's own decoder.
type p12PFX struct {
	Version  int
	AuthSafe p12ContentInfo
	MacData  asn1.RawValue `asn1:"optional"`
}

type p12ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

type p12EncryptedData struct {
	Version int
	Info    struct {
		ContentType asn1.ObjectIdentifier
		Algorithm   pkix.AlgorithmIdentifier
		Content     []byte `asn1:"tag:0,optional"`
	}
}

type p12SafeBag struct {
	ID         asn1.ObjectIdentifier
	Value      asn1.RawValue  `asn1:"tag:0,explicit"`
	Attributes []p12Attribute `asn1:"set,optional"`
}

type p12Attribute struct {
	ID     asn1.ObjectIdentifier
	Values asn1.RawValue `asn1:"set"`
}

type p12CertBag struct {
	ID   asn1.ObjectIdentifier
	Cert []byte `asn1:"tag:0,explicit"`
}

type pbes2Params struct {
	KDF struct {
		Algorithm asn1.ObjectIdentifier
		Params    struct {
			Salt       []byte
			Iterations int
			KeyLength  int `asn1:"optional"`
			PRF        pkix.AlgorithmIdentifier
		}
	}
	Cipher struct {
		Algorithm asn1.ObjectIdentifier
		IV        []byte
	}
}

var (
	oidData            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedData   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidShroudedKeyBag  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidCertBag         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidFriendlyName    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 20}
	oidLocalKeyID      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 21}
	oidPBES2           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA256  = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES256CBC       = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidX509Certificate = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 22, 1}
)

func mustUnmarshal(t *testing.T, der []byte, v any, what string) {
	t.Helper()
	rest, err := asn1.Unmarshal(der, v)
	if err != nil || len(rest) != 0 {
		t.Fatalf("%s: %v (%d trailing bytes)", what, err, len(rest))
	}
}

// decryptPBES2 opens an encryptedData SafeContents: PBES2 with
// PBKDF2-HMAC-SHA-256 and AES-256-CBC; the password is UTF-8 (RFC 9579).
func decryptPBES2(t *testing.T, ed p12EncryptedData, password string) []byte {
	t.Helper()
	if !ed.Info.Algorithm.Algorithm.Equal(oidPBES2) {
		t.Fatalf("certificates encrypted with %v, want PBES2", ed.Info.Algorithm.Algorithm)
	}
	var p pbes2Params
	mustUnmarshal(t, ed.Info.Algorithm.Parameters.FullBytes, &p, "PBES2 parameters")
	if !p.KDF.Algorithm.Equal(oidPBKDF2) || !p.KDF.Params.PRF.Algorithm.Equal(oidHMACWithSHA256) || !p.Cipher.Algorithm.Equal(oidAES256CBC) {
		t.Fatalf("PBES2 with %v/%v/%v, want PBKDF2, HMAC-SHA-256, AES-256-CBC", p.KDF.Algorithm, p.KDF.Params.PRF.Algorithm, p.Cipher.Algorithm)
	}
	key, err := pbkdf2.Key(sha256.New, password, p.KDF.Params.Salt, p.KDF.Params.Iterations, 32)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	ct := ed.Info.Content
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 || len(p.Cipher.IV) != aes.BlockSize {
		t.Fatalf("ciphertext of %d bytes, IV of %d", len(ct), len(p.Cipher.IV))
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, p.Cipher.IV).CryptBlocks(pt, ct)
	pad := int(pt[len(pt)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(pt[len(pt)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		t.Fatal("bad padding: wrong password or corrupt file")
	}
	return pt[:len(pt)-pad]
}

// p12Bags returns every SafeBag of a PKCS#12 file, certificate bags
// decrypted with password.
func p12Bags(t *testing.T, data []byte, password string) []p12SafeBag {
	t.Helper()
	var pfx p12PFX
	mustUnmarshal(t, data, &pfx, "PFX")
	if !pfx.AuthSafe.ContentType.Equal(oidData) {
		t.Fatalf("authSafe is %v, want data", pfx.AuthSafe.ContentType)
	}
	var authSafe []byte
	mustUnmarshal(t, pfx.AuthSafe.Content.Bytes, &authSafe, "authSafe")
	var infos []p12ContentInfo
	mustUnmarshal(t, authSafe, &infos, "AuthenticatedSafe")
	var bags []p12SafeBag
	for _, ci := range infos {
		var safeContents []byte
		switch {
		case ci.ContentType.Equal(oidData):
			mustUnmarshal(t, ci.Content.Bytes, &safeContents, "data SafeContents")
		case ci.ContentType.Equal(oidEncryptedData):
			var ed p12EncryptedData
			mustUnmarshal(t, ci.Content.Bytes, &ed, "encryptedData")
			safeContents = decryptPBES2(t, ed, password)
		default:
			t.Fatalf("ContentInfo of type %v", ci.ContentType)
		}
		var sc []p12SafeBag
		mustUnmarshal(t, safeContents, &sc, "SafeContents")
		bags = append(bags, sc...)
	}
	return bags
}

// bagAttribute returns the one value of attribute id, or nil without it.
func bagAttribute(t *testing.T, bag p12SafeBag, id asn1.ObjectIdentifier) *asn1.RawValue {
	t.Helper()
	var found *asn1.RawValue
	for _, a := range bag.Attributes {
		if !a.ID.Equal(id) {
			continue
		}
		if found != nil {
			t.Fatalf("bag %v has attribute %v twice", bag.ID, id)
		}
		var v asn1.RawValue
		mustUnmarshal(t, a.Values.Bytes, &v, "attribute value (one per SET)")
		found = &v
	}
	return found
}

func decodeBMPString(t *testing.T, v *asn1.RawValue) string {
	t.Helper()
	if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagBMPString || len(v.Bytes)%2 != 0 {
		t.Fatalf("friendlyName is tag %d class %d, want a BMPString", v.Tag, v.Class)
	}
	u := make([]uint16, len(v.Bytes)/2)
	for i := range u {
		u[i] = uint16(v.Bytes[2*i])<<8 | uint16(v.Bytes[2*i+1])
	}
	return string(utf16.Decode(u))
}

func TestPKCS12FriendlyName(t *testing.T) {
	root, err := NewRootCA(Options{CommonName: "test root CA"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := root.IssueClient(Options{CommonName: "alice", Emails: []string{"alice@example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	const password = "pässword"
	for _, name := range []string{FriendlyName(leaf.Cert, "alice.p12"), "Alice Ünïcode – ΑΒΓ 日本"} {
		data, err := PKCS12(leaf, []*x509.Certificate{root.Cert}, password, name)
		if err != nil {
			t.Fatal(err)
		}
		fingerprint := sha1.Sum(leaf.Cert.Raw)
		var keyBags, leafBags, caBags int
		for _, bag := range p12Bags(t, data, password) {
			fn, lk := bagAttribute(t, bag, oidFriendlyName), bagAttribute(t, bag, oidLocalKeyID)
			isLeaf := bag.ID.Equal(oidShroudedKeyBag)
			switch {
			case bag.ID.Equal(oidShroudedKeyBag):
				keyBags++
			case bag.ID.Equal(oidCertBag):
				var cb p12CertBag
				mustUnmarshal(t, bag.Value.Bytes, &cb, "CertBag")
				if !cb.ID.Equal(oidX509Certificate) {
					t.Fatalf("CertBag of type %v", cb.ID)
				}
				if isLeaf = bytes.Equal(cb.Cert, leaf.Cert.Raw); isLeaf {
					leafBags++
				} else if bytes.Equal(cb.Cert, root.Cert.Raw) {
					caBags++
				} else {
					t.Fatal("CertBag holds a certificate that is neither the leaf nor the CA")
				}
			default:
				t.Fatalf("unexpected bag %v", bag.ID)
			}
			if !isLeaf {
				if len(bag.Attributes) != 0 {
					t.Errorf("CA certificate bag has attributes %v, want none", bag.Attributes)
				}
				continue
			}
			if fn == nil || lk == nil || len(bag.Attributes) != 2 {
				t.Fatalf("bag %v attributes %v, want friendlyName and localKeyId", bag.ID, bag.Attributes)
			}
			if got := decodeBMPString(t, fn); got != name {
				t.Errorf("bag %v friendlyName %q, want %q", bag.ID, got, name)
			}
			if lk.Tag != asn1.TagOctetString || !bytes.Equal(lk.Bytes, fingerprint[:]) {
				t.Errorf("bag %v localKeyId %x, want the leaf's SHA-1 %x", bag.ID, lk.Bytes, fingerprint)
			}
		}
		if keyBags != 1 || leafBags != 1 || caBags != 1 {
			t.Fatalf("%d key, %d leaf and %d CA bags, want one each", keyBags, leafBags, caBags)
		}
	}
}

func TestPKCS12RefusesBadFriendlyName(t *testing.T) {
	root, err := NewRootCA(Options{CommonName: "test root CA"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := root.IssueClient(Options{CommonName: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "alice \U0001F600", "two\nlines", "tab\there", "bad \xff utf8", strings.Repeat("x", 129)} {
		if _, err := PKCS12(leaf, nil, "pw", name); err == nil {
			t.Errorf("PKCS12 accepted friendly name %q", name)
		}
	}
	if err := CheckFriendlyName(strings.Repeat("é", 128)); err != nil {
		t.Errorf("128 characters: %v", err)
	}
}

func TestFriendlyNameDefault(t *testing.T) {
	u, err := url.Parse("spiffe://example.org/alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cert *x509.Certificate
		want string
	}{
		{&x509.Certificate{Subject: pkix.Name{CommonName: "alice"}, DNSNames: []string{"a.example"}}, "alice"},
		{&x509.Certificate{Subject: pkix.Name{CommonName: "  "}, DNSNames: []string{"a.example"}, URIs: []*url.URL{u}}, "a.example"},
		{&x509.Certificate{EmailAddresses: []string{"alice@example.org"}, URIs: []*url.URL{u}}, "alice@example.org"},
		{&x509.Certificate{IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}, URIs: []*url.URL{u}}, "192.0.2.1"},
		{&x509.Certificate{URIs: []*url.URL{u}}, "spiffe://example.org/alice"},
		{&x509.Certificate{Subject: pkix.Name{Organization: []string{"Example"}}}, "alice.p12"},
	} {
		if got := FriendlyName(tc.cert, "alice.p12"); got != tc.want {
			t.Errorf("FriendlyName(%v, SANs %v %v %v %v) = %q, want %q", tc.cert.Subject, tc.cert.DNSNames, tc.cert.EmailAddresses, tc.cert.IPAddresses, tc.cert.URIs, got, tc.want)
		}
	}
}
