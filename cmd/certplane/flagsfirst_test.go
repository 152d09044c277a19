package main

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlagsFirst(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("listen", "", "")
	fs.Bool("keep", false, "")
	for _, c := range []struct{ in, want string }{
		{"DIR --listen 127.0.0.1:1", "--listen 127.0.0.1:1 -- DIR"},
		{"--listen 127.0.0.1:1 DIR", "--listen 127.0.0.1:1 -- DIR"},
		{"DIR --keep --listen=a", "--keep --listen=a -- DIR"},
		{"DIR -- --listen", "-- DIR --listen"},
		{"DIR --unknown x", "--unknown -- DIR x"},
		{"--keep", "--keep"},
		{"- DIR", "-- - DIR"},
	} {
		got := strings.Join(flagsFirst(fs, strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("flagsFirst(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestInitFlagsAfterDirectory: docs/certificates.md's form, `certplane init DIR
// --listen ...`, works.
func TestInitFlagsAfterDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "example")
	listen := freeAddr(t)
	out, errb, code := cli(t, "init", dir, "--listen", listen)
	if code != 0 {
		t.Fatalf("init DIR --listen: exit %d\n%s%s", code, out, errb)
	}
	out, errb, code = cli(t, "check", "--certs", filepath.Join(dir, "certs"), "--config", filepath.Join(dir, "config"))
	if code != 0 || !strings.Contains(out, "listener https on "+listen+" (") {
		t.Errorf("check after init DIR --listen %s: exit %d, stderr %q:\n%s", listen, code, errb, out)
	}
}
