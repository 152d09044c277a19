package config_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/config"
)

// conformanceDir is Envoy's client-certificate corpus, present in the
// project's shared workspace and absent from a user's clone.
const conformanceDir = "../../shared/conformance/envoy"

// TestEnvoyConformanceTrustStores loads every trust store of Envoy's own
// verification tests (bundles with CRLs inside, separate CRL files, chains
// of intermediates, a partial chain) on the date the verdicts were
// recorded: each must load, with the CRLs Envoy would load.
func TestEnvoyConformanceTrustStores(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(conformanceDir, "cases.json"))
	if os.IsNotExist(err) {
		t.Skipf("%s absent (it ships in the shared workspace only): skipping Envoy conformance", conformanceDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name           string   `json:"name"`
		TrustedCA      []string `json:"trusted_ca"`
		CRL            []string `json:"crl"`
		CRLInTrustedCA bool     `json:"crl_in_trusted_ca"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	ld := config.Loader{Now: func() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }}
	seen := map[string]bool{}
	for _, c := range cases {
		key := strings.Join(c.TrustedCA, ",") + "|" + strings.Join(c.CRL, ",")
		if seen[key] {
			continue
		}
		seen[key] = true
		files := map[string][]byte{}
		for _, f := range append(append([]string{}, c.TrustedCA...), c.CRL...) {
			b, err := os.ReadFile(filepath.Join(conformanceDir, "data", f))
			if err != nil {
				t.Fatal(err)
			}
			files["store/"+filepath.Base(f)] = b
		}
		ts, _, err := ld.ParseTrustStore("store", files)
		if err != nil {
			t.Errorf("%s (%s): %v", c.Name, key, err)
			continue
		}
		if wantCRL := len(c.CRL) > 0 || c.CRLInTrustedCA; (len(ts.CRLs) > 0) != wantCRL {
			t.Errorf("%s (%s): %d CRLs loaded, want some: %v", c.Name, key, len(ts.CRLs), wantCRL)
		}
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct trust stores in the corpus", len(seen))
	}
	// The corpus' one expired certificate is refused as a key pair.
	crt, _ := os.ReadFile(filepath.Join(conformanceDir, "data/tls_test_data/expired_san_uri_cert.pem"))
	key, _ := os.ReadFile(filepath.Join(conformanceDir, "data/tls_test_data/expired_san_uri_key.pem"))
	_, _, err = ld.ParseKeyPair(config.RoleClient, "expired", "expired/tls.crt", crt, "expired/tls.key", key)
	if err == nil || !strings.HasPrefix(err.Error(), "expired/tls.crt: certificate 1 (") || !strings.Contains(err.Error(), ") expired on ") {
		t.Errorf("expired client pair: %v", err)
	}
}
