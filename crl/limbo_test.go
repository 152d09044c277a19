package crl

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"
)

// limboDifferences are the crl::* cases where Admit knowingly disagrees
// with x509-limbo's RFC 5280 verdict; each must still differ.
var limboDifferences = map[string]string{
	"crl::crlnumber-missing": "BoringSSL, hence Envoy, does not require the CRL number; Admit reports ErrNoNumber and admits",
}

// TestLimboCRL runs the x509-limbo crl::* cases through Parse and Admit:
// the chain is built by crypto/x509 at the case's time, the CRLs are
// admitted against every certificate of the case, and the leaf is refused
// when no admitted, current CRL of its issuer clears it (BoringSSL's
// CRL_CHECK: no CRL is UNABLE_TO_GET_CRL) or one lists its serial.
func TestLimboCRL(t *testing.T) {
	ran := 0
	for _, c := range limboCases(t) {
		if !strings.HasPrefix(c.ID, "crl::") {
			continue
		}
		ran++
		got, why := limboCRLVerdict(t, c)
		reason, known := limboDifferences[c.ID]
		switch {
		case got == c.Expected && !known:
			t.Logf("%s: %s (%s)", c.ID, got, why)
		case got != c.Expected && known:
			t.Logf("%s: expected difference: %s (%s)", c.ID, reason, why)
		case known:
			t.Errorf("%s: listed as a difference (%s) but agrees with limbo (%s)", c.ID, reason, got)
		default:
			t.Errorf("%s: verdict %s (%s); limbo expects %s", c.ID, got, why, c.Expected)
		}
	}
	if ran < 8 {
		t.Errorf("ran %d crl::* cases; limbo has 8", ran)
	}
}

func limboCRLVerdict(t *testing.T, c limboCase) (verdict, why string) {
	at := time.Now()
	if c.ValidationTime != nil {
		var err error
		if at, err = time.Parse(time.RFC3339, *c.ValidationTime); err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	var cas []*x509.Certificate
	for _, s := range c.Trusted {
		for _, cert := range limboCerts(t, s) {
			roots.AddCert(cert)
			cas = append(cas, cert)
		}
	}
	for _, s := range c.Untrusted {
		for _, cert := range limboCerts(t, s) {
			inters.AddCert(cert)
			cas = append(cas, cert)
		}
	}
	leaf := limboCerts(t, c.Peer)[0]
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return "FAILURE", "chain: " + err.Error()
	}
	issuer := chains[0][1]
	var best *Summary
	var revoked map[string]bool
	for _, pemCRL := range c.CRLs {
		index := map[string]bool{}
		blk, _ := pem.Decode([]byte(pemCRL))
		s, err := Parse(blk.Bytes, func(e Entry) error {
			index[string(e.Serial)] = true
			return nil
		})
		if err != nil {
			why += "parse: " + err.Error() + "; "
			continue
		}
		by, problems, err := Admit(s, cas, at)
		if err != nil {
			why += "refused: " + err.Error() + "; "
			continue
		}
		for _, p := range problems {
			why += "problem: " + p.Error() + "; "
		}
		if by != issuer || !bytes.Equal(s.RawIssuer, leaf.RawIssuer) {
			continue
		}
		if errors.Is(errors.Join(problems...), ErrExpired) || errors.Is(errors.Join(problems...), ErrNotYetValid) {
			return "FAILURE", why + "the issuer's CRL is out of date"
		}
		if best == nil || Newer(s, best) {
			best, revoked = s, index
		}
	}
	switch {
	case best == nil:
		return "FAILURE", why + "no admitted CRL from the leaf's issuer"
	case revoked[string(AppendSerial(nil, leaf.SerialNumber))]:
		return "FAILURE", why + "leaf revoked"
	}
	return "SUCCESS", why + "leaf not on its issuer's CRL"
}

func limboCerts(t *testing.T, s string) []*x509.Certificate {
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return out
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cert)
	}
}
