package main

import (
	"net"
	"strings"
	"testing"
)

// freePortAttempts bounds onFreePorts: five ports in a row taken between
// the pick and the bind is no longer bad luck.
const freePortAttempts = 5

// freeAddrs returns n distinct loopback addresses that were free a moment
// ago: all are bound on port 0 together, then closed.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

// onFreePorts runs start on n loopback addresses that were free a moment
// ago, for what cannot bind port 0 itself (a config listener address, an
// admin address the test must know). Another process may bind such a port
// before the code under test does; start then returns an error that says
// so (portTaken), having stopped what it started, and onFreePorts runs it
// again on new addresses, at most freePortAttempts times. Any other error
// fails the test.
func onFreePorts(t *testing.T, n int, start func(addrs []string) error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addrs := freeAddrs(t, n)
		err := start(addrs)
		if err == nil {
			return
		}
		if !portTaken(err.Error()) || attempt == freePortAttempts {
			t.Fatalf("start on %v (attempt %d): %v", addrs, attempt, err)
		}
		t.Logf("start on %v: a port was taken before it was bound, trying new ports: %v", addrs, err)
	}
}

// portTaken reports whether an error or a log says a bind failed because
// the port is in use.
func portTaken(s string) bool { return strings.Contains(s, "address already in use") }
