// certplane patch: tests for Encoder.WithFriendlyName, not in upstream
// go-pkcs12 v0.7.4.

package pkcs12

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"
)

func friendlyNameTestCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// bagAttributes decodes pfxData's safe bags and returns the attributes of
// the key bag, of the bag holding leaf and of the other certificate bags.
func bagAttributes(t *testing.T, pfxData []byte, password string, leaf *x509.Certificate) (key, cert []pkcs12Attribute, others [][]pkcs12Attribute) {
	t.Helper()
	encodedPassword, err := bmpStringZeroTerminated(password)
	if err != nil {
		t.Fatal(err)
	}
	bags, _, err := getSafeContents(pfxData, encodedPassword, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	var keyBags, leafBags int
	for _, bag := range bags {
		switch {
		case bag.Id.Equal(oidPKCS8ShroundedKeyBag), bag.Id.Equal(oidKeyBag):
			keyBags++
			key = bag.Attributes
		case bag.Id.Equal(oidCertBag):
			der, err := decodeCertBag(bag.Value.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(der, leaf.Raw) {
				leafBags++
				cert = bag.Attributes
			} else {
				others = append(others, bag.Attributes)
			}
		default:
			t.Fatalf("unexpected bag %v", bag.Id)
		}
	}
	if keyBags != 1 || leafBags != 1 {
		t.Fatalf("%d key bags and %d leaf certificate bags, want 1 and 1", keyBags, leafBags)
	}
	return key, cert, others
}

func TestEncodeWithFriendlyName(t *testing.T) {
	ca, caKey := friendlyNameTestCert(t, "test CA", nil, nil)
	leaf, leafKey := friendlyNameTestCert(t, "alice", ca, caKey)
	const name = "alice (Ünïcode café)"
	wantName, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagBMPString, Bytes: []byte{
		0, 'a', 0, 'l', 0, 'i', 0, 'c', 0, 'e', 0, ' ', 0, '(', 0, 0xdc, 0, 'n', 0, 0xef, 0, 'c', 0, 'o', 0, 'd', 0, 'e',
		0, ' ', 0, 'c', 0, 'a', 0, 'f', 0, 0xe9, 0, ')',
	}})
	if err != nil {
		t.Fatal(err)
	}
	fingerprint, err := asn1.Marshal(sha1Sum(leaf.Raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		enc      *Encoder
		password string
	}{
		{"Modern2023", Modern2023, "pw"},
		{"LegacyDES", LegacyDES, "pw"},
		{"LegacyRC2", LegacyRC2, "pw"},
		{"Passwordless", Passwordless, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pfx, err := tc.enc.WithFriendlyName(name).Encode(leafKey, leaf, []*x509.Certificate{ca}, tc.password)
			if err != nil {
				t.Fatal(err)
			}
			keyAttrs, certAttrs, others := bagAttributes(t, pfx, tc.password, leaf)
			for which, attrs := range map[string][]pkcs12Attribute{"key bag": keyAttrs, "leaf certificate bag": certAttrs} {
				// Any order: DER sorts the SET OF by encoding, not by OID.
				var fn, lk *pkcs12Attribute
				for i := range attrs {
					switch {
					case attrs[i].Id.Equal(oidFriendlyName):
						fn = &attrs[i]
					case attrs[i].Id.Equal(oidLocalKeyID):
						lk = &attrs[i]
					}
				}
				if len(attrs) != 2 || fn == nil || lk == nil {
					t.Fatalf("%s attributes %+v, want friendlyName and localKeyId", which, attrs)
				}
				if !bytes.Equal(fn.Value.Bytes, wantName) {
					t.Errorf("%s friendlyName value %x, want one BMPString %x", which, fn.Value.Bytes, wantName)
				}
				if k, v, err := convertAttribute(fn); err != nil || k != "friendlyName" || v != name {
					t.Errorf("%s friendlyName decodes to %q=%q (%v), want %q", which, k, v, err, name)
				}
				if !bytes.Equal(lk.Value.Bytes, fingerprint) {
					t.Errorf("%s localKeyId %x, want the leaf's SHA-1 %x", which, lk.Value.Bytes, fingerprint)
				}
			}
			if len(others) != 1 || len(others[0]) != 0 {
				t.Errorf("CA certificate bags' attributes %+v, want one bag with none", others)
			}
			gotKey, gotCert, gotCAs, err := DecodeChain(pfx, tc.password)
			if err != nil {
				t.Fatal(err)
			}
			if !gotCert.Equal(leaf) || len(gotCAs) != 1 || !gotCAs[0].Equal(ca) || !gotKey.(*ecdsa.PrivateKey).Equal(leafKey) {
				t.Error("DecodeChain does not return the encoded key and chain")
			}
		})
	}
}

func TestEncodeWithoutFriendlyName(t *testing.T) {
	ca, caKey := friendlyNameTestCert(t, "test CA", nil, nil)
	leaf, leafKey := friendlyNameTestCert(t, "alice", ca, caKey)
	// Upstream behaviour: localKeyId only, also for an empty name. The
	// package-level encoders stay unchanged by WithFriendlyName.
	_ = Modern2023.WithFriendlyName("not me")
	for _, enc := range []*Encoder{Modern2023, Modern2023.WithFriendlyName("")} {
		pfx, err := enc.Encode(leafKey, leaf, []*x509.Certificate{ca}, "pw")
		if err != nil {
			t.Fatal(err)
		}
		keyAttrs, certAttrs, _ := bagAttributes(t, pfx, "pw", leaf)
		for _, attrs := range [][]pkcs12Attribute{keyAttrs, certAttrs} {
			if len(attrs) != 1 || !attrs[0].Id.Equal(oidLocalKeyID) {
				t.Errorf("attributes %+v, want localKeyId only", attrs)
			}
		}
	}
}

func TestEncodeWithFriendlyNameOutsideBMP(t *testing.T) {
	ca, caKey := friendlyNameTestCert(t, "test CA", nil, nil)
	leaf, leafKey := friendlyNameTestCert(t, "alice", ca, caKey)
	// A BMPString holds UCS-2 only: no surrogate pairs.
	if _, err := Modern2023.WithFriendlyName("alice \U0001F600").Encode(leafKey, leaf, nil, "pw"); err == nil {
		t.Fatal("Encode accepted a friendly name outside the Basic Multilingual Plane")
	}
}
