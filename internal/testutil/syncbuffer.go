// Package testutil holds small helpers that tests of several packages
// share. Production code never imports it.
package testutil

import (
	"bytes"
	"sync"
)

// SyncBuffer is a log sink that a test reads while the code under test
// writes to it from other goroutines. Wrote ticks after writes, so a test
// waits for output on an event rather than by polling. The zero value is
// ready to use.
type SyncBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	select {
	case s.tick() <- struct{}{}:
	default: // a tick is pending already
	}
	return n, err
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Wrote returns a channel that holds a tick whenever something was written
// since it was last received from: check String, and if what you wait for
// is not there yet, receive from Wrote and check again.
func (s *SyncBuffer) Wrote() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tick()
}

// tick is the channel, made on first use; s.mu is held.
func (s *SyncBuffer) tick() chan struct{} {
	if s.wrote == nil {
		s.wrote = make(chan struct{}, 1)
	}
	return s.wrote
}
