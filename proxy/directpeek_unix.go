//go:build unix

package proxy

import (
	"errors"
	"net"
	"syscall"
)

// idleConnUsable reports whether a pooled connection may carry a request:
// nothing arrived on it while it was idle (no unsolicited bytes, which the
// next request would read as its response) and the upstream has not closed
// it. net/http's Transport learns both from a read it keeps pending on every
// idle connection; one non-blocking MSG_PEEK receive does it here.
func idleConnUsable(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	usable := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing waiting, still open. n > 0: unsolicited bytes;
		// n == 0: the upstream closed; any other error: broken.
		usable = n <= 0 && errors.Is(rerr, syscall.EAGAIN)
		return true // never wait for readiness
	})
	return err == nil && usable
}
