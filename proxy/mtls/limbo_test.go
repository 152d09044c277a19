package mtls

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type limboCase struct {
	ID             string   `json:"id"`
	Kind           string   `json:"validation_kind"`
	Trusted        []string `json:"trusted_certs"`
	Untrusted      []string `json:"untrusted_intermediates"`
	Peer           string   `json:"peer_certificate"`
	CRLs           []string `json:"crls"`
	ValidationTime *string  `json:"validation_time"`
	MaxDepth       *uint32  `json:"max_chain_depth"`
	Expected       string   `json:"expected_result"`
}

// limboDifferences are the cases where this verifier knowingly disagrees
// with x509-limbo's RFC 5280 verdict, each for a stated reason. Where the
// reason is "crypto/x509", Go's own limbo test lists the same case.
var limboDifferences = map[string]string{
	// Envoy (BoringSSL) semantics, kept on purpose.
	"crl::crlnumber-missing":                      "BoringSSL, hence Envoy, does not require the CRL number extension",
	"pathlen::validation-ignores-pathlen-in-leaf": "the CA-shaped leaf has keyCertSign only; BoringSSL's ssl_client/ssl_server purpose needs digitalSignature or keyAgreement in a leaf key usage",
	"rfc5280::ca-as-leaf":                         "same: a leaf key usage without digitalSignature or keyAgreement fails BoringSSL's purpose check",
	"pathlen::max-chain-depth-1-self-issued":      "max_verify_depth counts every certificate of the path, self-issued ones too, as BoringSSL's verify depth does",
	"rfc5280::leaf-ku-keycertsign":                "neither BoringSSL nor crypto/x509 refuses keyCertSign in a non-CA leaf",
	// crypto/x509 path validation; Go's own limbo test lists the same cases.
	"pathlen::self-issued-certs-pathlen":           "crypto/x509 counts self-issued intermediates against pathLenConstraint (fail-closed)",
	"rfc5280::nc::permitted-self-issued":           "crypto/x509 applies name constraints to self-issued intermediates (fail-closed)",
	"rfc5280::nc::permitted-dn-match":              "crypto/x509 refuses directoryName constraints as an unhandled critical extension (fail-closed)",
	"rfc5280::nc::nc-forbids-othername-noop":       "crypto/x509 refuses otherName constraints as an unhandled critical extension (fail-closed)",
	"rfc5280::eku::ee-eku-empty":                   "crypto/x509 reads an empty EKU extension as no EKU",
	"rfc5280::aki::leaf-missing-aki":               "crypto/x509 does not require the AKI extension",
	"rfc5280::aki::intermediate-missing-aki":       "crypto/x509 does not require the AKI extension",
	"rfc5280::aki::cross-signed-root-missing-aki":  "crypto/x509 does not require the AKI extension",
	"rfc5280::ski::root-missing-ski":               "crypto/x509 does not require the SKI extension",
	"rfc5280::ski::intermediate-missing-ski":       "crypto/x509 does not require the SKI extension",
	"rfc5280::nc::permitted-dns-match-noncritical": "crypto/x509 does not require name constraints to be critical",
	"rfc5280::nc::invalid-dnsname-leading-period":  "crypto/x509 accepts a leading period in a DNS name constraint",
	"rfc5280::nc::not-allowed-in-ee-noncritical":   "crypto/x509 ignores name constraints in an end-entity certificate",
	"rfc5280::nc::not-allowed-in-ee-critical":      "crypto/x509 ignores name constraints in an end-entity certificate",
	"rfc5280::pc::ica-noncritical-pc":              "crypto/x509 does not require policy constraints to be critical",
	"rfc5280::san::noncritical-with-empty-subject": "crypto/x509 does not require a critical SAN when the subject is empty",
	"rfc5280::serial::too-long":                    "crypto/x509 accepts serials over 20 octets",
	"rfc5280::serial::zero":                        "crypto/x509 accepts a zero serial",
	"rfc5280::ca-empty-subject":                    "crypto/x509 accepts a CA with an empty subject",
	"rfc5280::root-non-critical-basic-constraints": "crypto/x509 does not require basicConstraints to be critical",
	// Peer-name expectations of SERVER cases do not apply to client certificates.
	"rfc5280::san::underscore-dns": "a malformed DNS SAN only fails a peer-name check, which client certificates do not get",
	"rfc5280::san::ip-in-dns":      "a malformed DNS SAN only fails a peer-name check, which client certificates do not get",
}

func pemCerts(t *testing.T, s string) []*x509.Certificate {
	var out []*x509.Certificate
	b := []byte(s)
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil
		}
		out = append(out, c)
	}
}

// TestLimbo runs the client-certificate relevant x509-limbo cases through
// the verifier (as Recheck does) and wants limbo's verdict, except for the
// listed, justified differences, which must still differ.
func TestLimbo(t *testing.T) {
	dir := conformanceDir(t, "x509-limbo")
	raw, err := os.ReadFile(filepath.Join(dir, "limbo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Testcases []limboCase `json:"testcases"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	ran, agreed := 0, 0
	for _, c := range doc.Testcases {
		if !strings.HasPrefix(c.ID, "crl::") && !strings.HasPrefix(c.ID, "pathlen::") && !strings.HasPrefix(c.ID, "rfc5280::") {
			continue
		}
		ran++
		got := limboVerdict(t, c)
		reason, known := limboDifferences[c.ID]
		switch {
		case got == c.Expected && !known:
			agreed++
		case got != c.Expected && known:
			t.Logf("%s: expected difference (%s)", c.ID, reason)
		case known:
			t.Errorf("%s: listed as a difference (%s) but now agrees with limbo (%s): remove it from the list", c.ID, reason, got)
		default:
			t.Errorf("%s: verdict %s, limbo expects %s", c.ID, got, c.Expected)
		}
	}
	t.Logf("limbo: %d cases run, %d agree, %d listed differences", ran, agreed, ran-agreed)
}

func limboVerdict(t *testing.T, c limboCase) string {
	var trusted []byte
	for _, s := range c.Trusted {
		trusted = append(trusted, s...)
	}
	var crls []byte
	for _, s := range c.CRLs {
		crls = append(crls, s...)
	}
	vc := &tlsv3.CertificateValidationContext{TrustedCa: inline(trusted)}
	if len(crls) > 0 {
		vc.Crl = inline(crls)
	}
	if c.MaxDepth != nil {
		vc.MaxVerifyDepth = wrapperspb.UInt32(*c.MaxDepth + 1) // limbo counts intermediates; Envoy counts the anchor too
	}
	opts := Options{}
	if c.ValidationTime != nil {
		at, err := time.Parse(time.RFC3339Nano, *c.ValidationTime)
		if err != nil {
			t.Fatalf("%s: validation_time: %v", c.ID, err)
		}
		opts.Now = func() time.Time { return at }
	}
	v, err := NewVerifier(vc, true, opts)
	if err != nil {
		return "FAILURE"
	}
	v.keyUsage = x509.ExtKeyUsageServerAuth
	if c.Kind == "CLIENT" {
		v.keyUsage = x509.ExtKeyUsageClientAuth
	}
	peer := pemCerts(t, c.Peer)
	if len(peer) != 1 {
		return "FAILURE"
	}
	for _, s := range c.Untrusted {
		inter := pemCerts(t, s)
		if inter == nil {
			return "FAILURE"
		}
		peer = append(peer, inter...)
	}
	if f := v.Recheck(peer); f != nil {
		return "FAILURE"
	}
	return "SUCCESS"
}
