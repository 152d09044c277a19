package config_test

import (
	"runtime"
	"syscall"
	"testing"

	"github.com/certplane/certplane/config"
)

// nobody is the conventional unprivileged uid.
const nobody = 65534

// loadAsNobody runs load on a dedicated OS thread whose file-system uid is
// nobody. Changing the fsuid from 0 drops CAP_DAC_OVERRIDE and
// CAP_DAC_READ_SEARCH from that thread only (capabilities(7)), so file
// permissions apply to it as they would to a non-root operator. The thread
// is never unlocked, so the runtime discards it when the goroutine ends.
func loadAsNobody(t *testing.T, load func() (*config.Model, error)) (*config.Model, error) {
	t.Helper()
	type result struct {
		m   *config.Model
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// setfsuid returns the previous fsuid, never an error: check by
		// calling it again.
		syscall.Setfsuid(nobody)
		m, err := load()
		done <- result{m, err}
	}()
	r := <-done
	return r.m, r.err
}
