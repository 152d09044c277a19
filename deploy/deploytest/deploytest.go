// Package deploytest holds what the deployment tests (deploy/kubernetes,
// deploy/systemd) share: the real certplane binary, built once per test
// process, and the checks they run with it.
package deploytest

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"

	"github.com/certplane/certplane/internal/testutil"
)

// Binary returns the path of a certplane binary built from this checkout.
// The deployment files run that binary, so the tests run it too rather
// than calling package main's functions.
func Binary(tb testing.TB) string {
	tb.Helper()
	return testutil.CertplaneBinary(tb)
}

// Cleanup removes the binary; call it from TestMain after m.Run.
func Cleanup() { testutil.RemoveBinary() }

// Run runs the binary and returns its stdout, stderr and exit status.
func Run(tb testing.TB, args ...string) (stdout, stderr string, code int) {
	tb.Helper()
	cmd := exec.Command(Binary(tb), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		tb.Fatalf("certplane %q: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// CheckFlags fails tb unless every flag in args (a command line without the
// binary: "serve --certs=DIR ...") is a flag of that subcommand with a value
// it accepts. It runs the command with --help appended: the flag parser
// stops at --help only after every earlier flag parsed.
func CheckFlags(tb testing.TB, where string, args []string) {
	tb.Helper()
	if len(args) == 0 {
		tb.Fatalf("%s: no certplane subcommand", where)
	}
	_, stderr, code := Run(tb, append(append([]string{}, args...), "--help")...)
	if code != 0 {
		tb.Errorf("%s: certplane %q is refused (exit %d):\n%s", where, args, code, lastLines(stderr, 2))
	}
}

// lastLines returns the last n lines of s: the error, after the usage.
func lastLines(s string, n int) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(s)), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
