package hardening_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The real certplane binary, built once per test run: `certplane check`
// and `certplane proxy` are exercised as an operator runs them.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func certplaneBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "certplane-hardening-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "certplane")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/certplane/certplane/cmd/certplane")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = errors.New("go build ./cmd/certplane: " + err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
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
