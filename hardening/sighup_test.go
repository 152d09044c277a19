package hardening_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/certplane/certplane/pki/pkitest"
)

// TestSIGHUPReloadsServe sends a real SIGHUP to a running `certplane
// serve` whose watcher cannot see a change in time (a one-hour debounce,
// maximum delay and resync): the rotated certificate is published at once,
// by a reload the signal requested. Without the wiring, SIGHUP's default
// action ends the process.
func TestSIGHUPReloadsServe(t *testing.T) {
	std := pkitest.NewStandard(t, fmt.Sprintf("127.0.0.1:%d", freePort(t)), "127.0.0.1:9001")
	sock := "unix://" + filepath.Join(t.TempDir(), "xds.sock")
	lines, cmd := startBin(t, nil, "serve", "--certs", std.Certs, "--config", std.Config,
		"--xds-address", sock, "--admin-address", "",
		"--debounce", "1h", "--max-delay", "1h", "--resync", "1h")
	waitLine(t, lines, `"msg":"reload: published"`)

	std.Tree.Server("default", std.CA.Server("localhost", pkitest.IPs("127.0.0.1")))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l := waitLine(t, lines, `"trigger":"requested"`)
	for _, want := range []string{`"msg":"reload: published"`, `"pushed":true`, `"changed":["secrets"]`} {
		if !strings.Contains(l, want) {
			t.Errorf("reload line after SIGHUP lacks %s:\n%s", want, l)
		}
	}
}

// TestSIGHUPReloadsStandaloneProxy: the proxy's embedded control plane
// reloads on SIGHUP too, and says so even when nothing changed.
func TestSIGHUPReloadsStandaloneProxy(t *testing.T) {
	std := pkitest.NewStandard(t, fmt.Sprintf("127.0.0.1:%d", freePort(t)), "127.0.0.1:9001")
	lines, cmd := startBin(t, nil, "proxy", "--certs", std.Certs, "--config", std.Config, "--admin-address", "")
	waitLine(t, lines, `"msg":"reload: published"`)

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l := waitLine(t, lines, `"trigger":"requested"`)
	if !strings.Contains(l, `"msg":"reload: no change"`) {
		t.Errorf("reload line after SIGHUP, nothing changed:\n%s", l)
	}
}
