package main

import (
	"strings"
	"testing"
)

// TestProxyPprofNeedsLoopback: --pprof is refused (usage error, exit 2)
// unless the admin endpoint is on loopback.
func TestProxyPprofNeedsLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", ""} {
		_, errb, code := cli(t, "proxy", "--pprof", "--admin-address", addr, "--certs", t.TempDir(), "--config", t.TempDir())
		if code != 2 || !strings.Contains(errb, "--pprof") {
			t.Errorf("--pprof --admin-address %q: exit %d, stderr %q", addr, code, errb)
		}
	}
}
