package config_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/certplane/certplane/config"
)

// The seed corpora live in testdata/fuzz/<target>: valid trees' files, the
// bad inputs of the matrix, PEM and DER. `go test` runs every seed; `go test
// -fuzz=FuzzParseConfig ./config` explores from them.

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(webYAML))
	f.Add([]byte(otherYAML))
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := config.ParseConfig("f.yaml", data)
		if err != nil {
			assertFileErrors(t, err, "f.yaml")
			return
		}
		for _, l := range cf.Listeners {
			if l.Name == "" || l.Port == 0 || len(l.Certificates) == 0 || len(l.Routes) == 0 || l.TLS.MinVersion == 0 {
				t.Fatalf("listener accepted with a hole: %+v", l)
			}
			if (l.ClientAuth.Mode == config.ModeVerify || l.ClientAuth.Mode == config.ModeOptional) && l.ClientAuth.TrustStore == "" {
				t.Fatalf("mode %s without trust store accepted", l.ClientAuth.Mode)
			}
		}
		for _, b := range cf.Backends {
			if len(b.Endpoints) == 0 {
				t.Fatalf("backend without endpoints accepted: %+v", b)
			}
		}
		for _, p := range cf.Problems {
			if p.File != "f.yaml" || p.Line == 0 || !strings.HasPrefix(p.Error(), "f.yaml:") {
				t.Fatalf("problem without file and line: %+v", p)
			}
		}
	})
}

func FuzzParseTrustStore(f *testing.F) {
	f.Fuzz(func(t *testing.T, bundle, crl []byte) {
		ts, _, err := config.ParseTrustStore("s", map[string][]byte{"s/ca.pem": bundle, "s/list.crl": crl})
		if err != nil {
			assertFileErrors(t, err, "s") // a file, or the store directory
		}
		if ts == nil {
			return
		}
		if len(ts.CAs) == 0 {
			t.Fatal("trust store without CA accepted")
		}
		for _, c := range ts.CAs {
			if c.Version >= 3 && !c.IsCA {
				t.Fatalf("non-CA accepted: %s", c.Subject)
			}
		}
		rest := ts.CRLPEM.Bytes()
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			rl, err := x509.ParseRevocationList(b.Bytes)
			if err != nil {
				t.Fatalf("CRL served does not parse: %v", err)
			}
			ok := false
			for _, c := range ts.CAs {
				ok = ok || rl.CheckSignatureFrom(c) == nil
			}
			if !ok {
				t.Fatalf("CRL of %s accepted without a signing CA", rl.Issuer)
			}
		}
	})
}

func FuzzParseCRL(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rls, err := config.ParseCRLs("x.crl", data)
		if err != nil {
			assertFileErrors(t, err, "x.crl")
			return
		}
		if len(rls) == 0 {
			t.Fatal("no CRL and no error")
		}
		// crl.Parse accepts a strict subset of what x509 accepts.
		if !bytes.Contains(data, []byte("-----BEGIN ")) {
			if _, err := x509.ParseRevocationList(data); err != nil {
				t.Fatalf("accepted a DER CRL x509 refuses: %v", err)
			}
		}
	})
}

func FuzzParseKeyPair(f *testing.F) {
	f.Fuzz(func(t *testing.T, cert, key []byte) {
		kp, _, err := config.ParseKeyPair(config.RoleServer, "k", "k/tls.crt", cert, "k/tls.key", key)
		if err != nil {
			assertFileErrors(t, err, "k/tls.")
			return
		}
		if !kp.Chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(kp.Key.Public()) {
			t.Fatal("mismatched key accepted")
		}
	})
}

// assertFileErrors checks that every joined error is a FileError naming a
// file with the given prefix.
func assertFileErrors(t *testing.T, err error, prefix string) {
	t.Helper()
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			assertFileErrors(t, e, prefix)
		}
		return
	}
	var fe *config.FileError
	if !errors.As(err, &fe) || !strings.HasPrefix(fe.File, prefix) || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("error does not name its file: %v", err)
	}
}
