package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("certplane version exited %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "certplane ") || !strings.HasPrefix(lines[1], "commit ") || lines[2] != runtime.Version() {
		t.Errorf("certplane version printed %q, want certplane <version>, commit <rev>, %s", out.String(), runtime.Version())
	}
}
