package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var bin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// CertplaneBinary returns the path of a certplane binary built from this
// checkout, once per test process, for tests that run the command as an
// operator does. Call RemoveBinary from TestMain after m.Run.
func CertplaneBinary(tb testing.TB) string {
	tb.Helper()
	bin.once.Do(func() {
		bin.dir, bin.err = os.MkdirTemp("", "certplane-test-bin-")
		if bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "certplane")
		out, err := exec.Command("go", "build", "-o", bin.path, "github.com/certplane/certplane/cmd/certplane").CombinedOutput()
		if err != nil {
			bin.err = fmt.Errorf("go build ./cmd/certplane: %w\n%s", err, out)
		}
	})
	if bin.err != nil {
		tb.Fatal(bin.err)
	}
	return bin.path
}

// RemoveBinary removes the binary CertplaneBinary built, if any.
func RemoveBinary() {
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
}
