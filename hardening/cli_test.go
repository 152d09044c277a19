package hardening_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/certplane/certplane/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinary()
	os.Exit(code)
}

// certplaneBin is the real certplane binary, built once per test run:
// `certplane check` and `certplane proxy` are exercised as an operator
// runs them.
func certplaneBin(t testing.TB) string {
	t.Helper()
	return testutil.CertplaneBinary(t)
}

// runCLI runs the certplane binary and returns its combined output and
// exit status.
func runCLI(t testing.TB, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(certplaneBin(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	default:
		t.Fatalf("certplane %v: %v", args, err)
		return "", -1
	}
}
