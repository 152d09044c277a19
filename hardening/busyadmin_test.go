package hardening_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProxyBusyAdminAddress runs `certplane proxy` (standalone, so the
// embedded control plane's goroutines are running) against an admin address
// another socket holds. It must exit non-zero with an error naming the
// address, never panic: the components that already started must all have
// stopped before their results channel goes away. The failure is a race
// between the exiting main goroutine and those components, so the binary
// runs several times.
func TestProxyBusyAdminAddress(t *testing.T) {
	bin := certplaneBin(t)
	dir := filepath.Join(t.TempDir(), "example")
	if out, code := runCLI(t, "init", "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), dir); code != 0 {
		t.Fatalf("certplane init: exit %d\n%s", code, out)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	const runs = 8
	for i := range runs {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, "proxy",
			"--certs", filepath.Join(dir, "certs"), "--config", filepath.Join(dir, "config"),
			"--admin-address", addr)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		timedOut := ctx.Err() != nil
		cancel()
		var ee *exec.ExitError
		switch {
		case timedOut:
			t.Fatalf("run %d: still running after 30s with a busy admin address:\n%s", i, out.String())
		case err == nil:
			t.Fatalf("run %d: exit 0 with a busy admin address:\n%s", i, out.String())
		case !errors.As(err, &ee):
			t.Fatalf("run %d: %v", i, err)
		}
		s := out.String()
		if strings.Contains(s, "panic") || strings.Contains(s, "goroutine ") {
			t.Fatalf("run %d: the binary panicked (exit %d):\n%s", i, ee.ExitCode(), s)
		}
		if !strings.Contains(s, "--admin-address") || !strings.Contains(s, addr) {
			t.Fatalf("run %d: exit %d without an error naming --admin-address %s:\n%s", i, ee.ExitCode(), addr, s)
		}
	}
}
