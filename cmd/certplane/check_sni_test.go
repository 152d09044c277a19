package main

import (
	"path/filepath"
	"strings"
	"testing"
)

const checkSharedYAML = `listeners:
  - name: partners
    address: 127.0.0.1:8443
    server_names: [partners.example.com, "*.partners.example.com"]
    certificates: [default]
    client_auth: {mode: verify, trust_store: clients}
    routes: [{path_prefix: /, backend: demo}]
  - name: public
    address: 127.0.0.1:8443
    certificates: [default]
    client_auth: {mode: off}
    routes: [{path_prefix: /, backend: demo}]
backends:
  - {name: demo, endpoints: ["127.0.0.1:9001"]}
`

// check shows which server names choose each listener of a shared address,
// and explains an overlap, naming both listeners and the file.
func TestCheckSharedAddress(t *testing.T) {
	dir := initExample(t)
	write(t, dir, "config/listeners.yaml", checkSharedYAML)
	out, errb, code := checkCLI(t, dir)
	if code != 0 || errb != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errb, out)
	}
	for _, want := range []string{
		"  server names: partners.example.com, *.partners.example.com\n",
		"  server names: any other, or none (the default of its shared address); 421 for a Host of the other listeners on 127.0.0.1:8443: *.partners.example.com, partners.example.com\n",
		"2 listeners served, 0 blocked",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	write(t, dir, "config/listeners.yaml", strings.Replace(checkSharedYAML, "    certificates: [default]\n    client_auth: {mode: off}",
		"    server_names: [API.partners.example.com]\n    certificates: [default]\n    client_auth: {mode: off}", 1))
	out, _, code = checkCLI(t, dir)
	file := filepath.Join(dir, "config", "listeners.yaml")
	for _, want := range []string{
		"listener partners (" + file + "): NOT SERVED, see problems\n",
		"listener public (" + file + "): NOT SERVED, see problems\n",
		`  [listener public] ` + file + `:10: listener "public": server name "api.partners.example.com" overlaps "*.partners.example.com" of listener "partners" (` + file + `:4), which shares address 127.0.0.1:8443: listeners on one address need disjoint server_names`,
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d; output lacks %q:\n%s", code, want, out)
		}
	}
}
