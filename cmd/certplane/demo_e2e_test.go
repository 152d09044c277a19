package main

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoEndToEnd runs the README's demo with the real proxy and checks the
// cloud guides' test with the real curl: alice alternates between the two
// backends, mallory (revoked) and a client without a certificate are refused,
// and each refusal is in the connection log with its reason. The demo runs
// on free ports, so a demo a person runs on this machine does not disturb
// it.
func TestDemoEndToEnd(t *testing.T) {
	needTool(t, "curl")
	d := startDemoCmd(t)
	_, port, _ := net.SplitHostPort(d.listen)
	ca := filepath.Join(d.dir, "certs/trust/clients/ca.pem")
	get := func(client string) (string, error) {
		args := []string{"-sS", "--max-time", "10", "--cacert", ca}
		if client != "" {
			args = append(args, "--cert", filepath.Join(d.dir, "clients", client+".crt"), "--key", filepath.Join(d.dir, "clients", client+".key"))
		}
		b, err := exec.Command("curl", append(args, "https://localhost:"+port+"/")...).CombinedOutput()
		return string(b), err
	}
	var seen []string
	for range 4 {
		body, err := get("alice")
		if err != nil {
			t.Fatalf("alice refused: %v: %s", err, body)
		}
		seen = append(seen, strings.TrimSpace(body))
	}
	if seen[0] == seen[1] || seen[0] != seen[2] || seen[1] != seen[3] {
		t.Fatalf("alice's answers do not alternate: %q", seen)
	}
	for _, who := range []string{"mallory", ""} {
		if body, err := get(who); err == nil {
			t.Fatalf("client %q was answered: %s", who, body)
		}
	}
	// The demo returns once its proxy has stopped, and the proxy once every
	// connection it accepted is logged: no wait is needed after stop. curl
	// exits on the server's alert, which is sent before the line is written,
	// so reading the log before the demo returns would race.
	d.stop(t)
	log := d.out.String()
	for _, want := range []string{`"transport_failure":"revoked"`, `"transport_failure":"no_certificate"`,
		`"upstream_host":"` + d.backends[0] + `"`, `"upstream_host":"` + d.backends[1] + `"`} {
		if !strings.Contains(log, want) {
			t.Errorf("connection log lacks %s:\n%s", want, log)
		}
	}
}
