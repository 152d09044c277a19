package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// initExample scaffolds the `certplane init` example into a temp dir.
func initExample(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "example")
	mustCLI(t, "init", dir)
	return dir
}

func checkCLI(t *testing.T, dir string) (string, string, int) {
	t.Helper()
	return cli(t, "check", "--certs", filepath.Join(dir, "certs"), "--config", filepath.Join(dir, "config"))
}

func TestCheckInitExample(t *testing.T) {
	dir := initExample(t)
	out, errb, code := checkCLI(t, dir)
	if code != 0 || errb != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errb, out)
	}
	for _, want := range []string{
		"listener https on 127.0.0.1:8443 (" + filepath.Join(dir, "config", "listeners.yaml") + ")\n",
		"  tls: tls12, TLSv1_2 to TLSv1_3, TLS 1.2 suites ECDHE-ECDSA-AES128-GCM-SHA256:",
		"; alpn h2,http/1.1\n",
		"  certificate default (default): CN=localhost; SANs DNS:localhost, IP:127.0.0.1; expires ",
		"  client auth: verify, trust store clients: 1 CA, 1 CRL [",
		", 1 revoked, next update ",
		"], crl full_chain\n",
		"  client certificate headers: xfcc\n",
		"  route / -> backend demo: round robin over 127.0.0.1:9001, 127.0.0.1:9002; health check GET /healthz every 1s, timeout 1s, healthy after 1, unhealthy after 2\n",
		"1 listener served, 0 blocked, 0 problems, 0 warnings\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckBrokenInputs: each broken input exits 1, names the file and the
// defect, and the listener is reported as not served.
func TestCheckBrokenInputs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   string // the problem line, $DIR for the example dir
	}{
		{"malformed PEM", func(t *testing.T, dir string) {
			write(t, dir, "certs/server/default/tls.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n")
		}, "  [listener https] $DIR/certs/server/default/tls.crt: malformed or truncated PEM block at line 1 (no valid END line or bad base64)\n"},
		{"key of another pair", func(t *testing.T, dir string) {
			key, err := os.ReadFile(filepath.Join(dir, "clients", "alice.key"))
			if err != nil {
				t.Fatal(err)
			}
			write(t, dir, "certs/server/default/tls.key", string(key))
		}, "  [listener https] $DIR/certs/server/default/tls.key: private key (ECDSA P-256) does not match the public key (ECDSA P-256) of certificate 1 (CN=localhost) in $DIR/certs/server/default/tls.crt\n"},
		{"CRL from another CA", func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "other")
			mustCLI(t, "init", other)
			crl, err := os.ReadFile(filepath.Join(other, "certs", "trust", "clients", "ca.crl"))
			if err != nil {
				t.Fatal(err)
			}
			write(t, dir, "certs/trust/clients/ca.crl", string(crl))
		}, `  [listener https] $DIR/certs/trust/clients/ca.crl: CRL 1 (issuer CN=certplane example CA,O=certplane example) is not signed by any CA of trust store "clients": x509: ECDSA verification failure; without it the store has no CRL, and then no client would be checked for revocation: the whole store is refused until the file is fixed` + "\n"},
		{"unknown YAML key", func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, "config", "listeners.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			write(t, dir, "config/listeners.yaml", strings.Replace(string(b), "client_auth:", "client_auht:", 1))
		}, `  [file] $DIR/config/listeners.yaml:`},
		{"route matching a header certplane sets", func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, "config", "listeners.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			write(t, dir, "config/listeners.yaml", strings.Replace(string(b), "{path_prefix: /, backend: demo}",
				"{path_prefix: /, backend: demo, headers: [{name: x-forwarded-client-cert, exact: x}]}", 1))
		}, `  [listener https] $DIR/config/listeners.yaml:14: listener "https": routes[0]: headers[0]: header "x-forwarded-client-cert" cannot be matched: certplane removes it from every request and sets its own from the verified certificate` + "\n"},
		{"route shadowed by an earlier one", func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, "config", "listeners.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			write(t, dir, "config/listeners.yaml", strings.Replace(string(b), "      - {path_prefix: /, backend: demo}",
				"      - {path_prefix: /, backend: demo}\n      - {host: api.example.com, path_prefix: /, backend: demo}", 1))
		}, `  [listener https] $DIR/config/listeners.yaml:15: listener "https": routes[1]: routes[0] above matches every request this route matches (host api.example.com, path_prefix /), so this route would never match` + "\n"},
		{"symlink loop", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "certs", "trust", "clients", "ca.pem")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("ca.pem", p); err != nil {
				t.Fatal(err)
			}
		}, "  [listener https] $DIR/certs/trust/clients/ca.pem: symbolic link loop: too many levels of symbolic links\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := initExample(t)
			tc.break_(t, dir)
			out, errb, code := checkCLI(t, dir)
			if code != 1 || errb != "certplane check: 1 problem found\n" {
				t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errb, out)
			}
			if want := strings.ReplaceAll(tc.want, "$DIR", dir); !strings.Contains(out, "problems (1):\n"+want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
			if !strings.Contains(out, "0 listeners served") {
				t.Errorf("the broken listener is still served:\n%s", out)
			}
		})
	}
}

func TestCheckUsage(t *testing.T) {
	out, errb, code := cli(t, "check", "--help")
	if code != 0 || errb != "" || !strings.HasPrefix(out, "usage: certplane check --certs DIR --config DIR") {
		t.Errorf("--help: exit %d, stderr %q\n%s", code, errb, out)
	}
	if _, errb, code := cli(t, "check", "--certs", t.TempDir(), "--config", filepath.Join(t.TempDir(), "missing")); code != 1 || !strings.Contains(errb, "missing: file does not exist") {
		t.Errorf("missing dir: exit %d, stderr %q", code, errb)
	}
	if _, _, code := cli(t, "check", "extra"); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
}

func write(t *testing.T, dir, rel, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, rel), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A backend pointing at the listener itself (one request bounced 5,945
// times) is a problem: check exits 1 naming the file, the backend and the
// listener.
func TestCheckSelfLoop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "example")
	mustCLI(t, "init", "--backends", "127.0.0.1:9001,127.0.0.1:8443", dir)
	out, errb, code := checkCLI(t, dir)
	if code != 1 || errb != "certplane check: 1 problem found\n" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errb, out)
	}
	file := filepath.Join(dir, "config", "listeners.yaml")
	want := "problems (1):\n  [listener https] " + file + `:17: backend "demo": endpoint 127.0.0.1:8443 is listener "https" of this config (127.0.0.1:8443, ` + file + ":6): requests sent to it would loop back into certplane; point the backend at the application\n"
	if !strings.Contains(out, want) || !strings.Contains(out, "0 listeners served") {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

// --admin-address names the admin endpoints the data plane will run: a
// backend on one is a warning (served anyway), not a problem.
func TestCheckAdminAddress(t *testing.T) {
	dir := initExample(t)
	out, errb, code := cli(t, "check", "--certs", filepath.Join(dir, "certs"), "--config", filepath.Join(dir, "config"),
		"--admin-address", "127.0.0.1:18001", "--admin-address", ":9002")
	if code != 0 || errb != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errb, out)
	}
	file := filepath.Join(dir, "config", "listeners.yaml")
	want := "warnings (1):\n  [file] " + file + `:17: backend "demo": endpoint 127.0.0.1:9002 is an admin endpoint (--admin-address :9002): requests routed to it would reach an admin interface instead of an application` + "\n"
	if !strings.Contains(out, want) || !strings.Contains(out, "1 listener served, 0 blocked, 0 problems, 1 warning\n") {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

// TestCheckShowsRouting: check prints what each route matches, its
// timeouts and retries when not the defaults, and the lb_policy.
func TestCheckShowsRouting(t *testing.T) {
	dir := initExample(t)
	b, err := os.ReadFile(filepath.Join(dir, "config", "listeners.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "      - {path_prefix: /, backend: demo}",
		"      - {host: api.example.com, path: /v1/pay, headers: [{name: x-tenant, exact: blue}], backend: demo, timeout: 5s, idle_timeout: 0s, retries: {attempts: 2, on: [reset, 5xx]}}\n      - {path_prefix: /, backend: demo}", 1)
	s = strings.Replace(s, "  - name: demo\n", "  - name: demo\n    lb_policy: least_request\n", 1)
	write(t, dir, "config/listeners.yaml", s)
	out, errb, code := checkCLI(t, dir)
	if code != 0 || errb != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errb, out)
	}
	for _, want := range []string{
		"  route api.example.com/v1/pay (exact) [x-tenant: blue] (timeout 5s; idle timeout off; retries 2 on reset,5xx) -> backend demo: least request over 127.0.0.1:9001, 127.0.0.1:9002;",
		"  route / -> backend demo: least request over",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
