package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoEndToEnd runs the README's demo with the real proxy and checks the
// cloud guides' test with the real curl: alice alternates between the two
// backends, mallory (revoked) and a client without a certificate are refused,
// and each refusal is in the connection log with its reason.
func TestDemoEndToEnd(t *testing.T) {
	demoPortsFree(t)
	needTool(t, "curl")
	dir := filepath.Join(t.TempDir(), "ex")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, []string{"--dir", dir}, &out, &errb) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl-C to stop.") {
		select {
		case err := <-done:
			t.Fatalf("demo ended early: %v\n%s%s", err, out.String(), errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not ready after 30s:\n%s%s", out.String(), errb.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the output with a deadline, not waiting for an event
	}
	ca := filepath.Join(dir, "certs/trust/clients/ca.pem")
	get := func(client string) (string, error) {
		args := []string{"-sS", "--max-time", "10", "--cacert", ca}
		if client != "" {
			args = append(args, "--cert", filepath.Join(dir, "clients", client+".crt"), "--key", filepath.Join(dir, "clients", client+".key"))
		}
		b, err := exec.Command("curl", append(args, "https://localhost:8443/")...).CombinedOutput()
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
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
	log := out.String()
	for _, want := range []string{`"transport_failure":"revoked"`, `"transport_failure":"no_certificate"`, `"upstream_host":"127.0.0.1:9001"`, `"upstream_host":"127.0.0.1:9002"`} {
		if !strings.Contains(log, want) {
			t.Errorf("connection log lacks %s:\n%s", want, log)
		}
	}
}
