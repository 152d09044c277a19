package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certplane/certplane/pki/pkitest"
)

// serve knows its --admin-address: a backend on it is logged as a warning
// and listed under /status warnings, and the listener is still served.
func TestServeWarnsAboutBackendOnAdmin(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := free.Addr().String()
	free.Close()
	std := pkitest.NewStandard(t, "127.0.0.1:8443", admin)
	sock := filepath.Join(t.TempDir(), "xds.sock")
	sl, done, cancel := startServe(t,
		"--certs", std.Certs, "--config", std.Config,
		"--xds-address", "unix://"+sock, "--admin-address", admin,
		"--debounce", "5ms", "--resync", "1h")
	want := "is an admin endpoint (--admin-address " + admin + "): requests routed to it would reach an admin interface instead of an application"
	if w := sl.next(t, "warning"); w["file"] != std.ConfigFile || !strings.Contains(w["warning"].(string), want) {
		t.Errorf("warning line %v", w)
	}
	if pub := sl.next(t, "reload: published"); pub["listeners"] != float64(1) {
		t.Errorf("reload line %v", pub)
	}
	st := fetchStatus(t, sl.next(t, "admin listening")["address"].(string))
	if len(st.ControlPlane.Warnings) != 1 || !strings.Contains(st.ControlPlane.Warnings[0].Reason, want) {
		t.Errorf("/status warnings %+v", st.ControlPlane.Warnings)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v on shutdown", err)
	}
}
