package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freePortAttempts bounds onFreePorts: five ports in a row taken between
// the pick and the bind is no longer bad luck.
const freePortAttempts = 5

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
		addrs := reserveAddrs(t, n)
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

// TestBusyPortsSayAddressInUse: every way a taken port shows up in the
// tests that use onFreePorts says "address already in use", so that they
// start again rather than fail: the demo's check before it starts the
// proxy, the proxy's admin endpoint, and the proxy's listener (logged; the
// proxy keeps running).
func TestBusyPortsSayAddressInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().String()
	dir := t.TempDir()
	if err := initDir(dir, initOptions{listen: busy, backends: []string{"127.0.0.1:9"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	proxyArgs := []string{"--certs", filepath.Join(dir, "certs"), "--config", filepath.Join(dir, "config")}

	err = runDemo(context.Background(), []string{"--listen", busy, "--admin-address", busy, "--backends", "127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil || !portTaken(err.Error()) {
		t.Errorf("demo on a busy listener port: %v", err)
	}
	err = runProxy(context.Background(), append(proxyArgs, "--admin-address", busy), io.Discard, io.Discard)
	if err == nil || !portTaken(err.Error()) {
		t.Errorf("proxy on a busy admin port: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	errOut := newSyncBuffer()
	done := make(chan error, 1)
	go func() { done <- runProxy(ctx, append(proxyArgs, "--admin-address", ""), io.Discard, errOut) }()
	defer func() { cancel(); <-done }()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(errOut.String(), "listener cannot bind") {
		select {
		case <-errOut.Wrote():
		case err := <-done:
			t.Fatalf("proxy ended: %v\n%s", err, errOut.String())
		case <-deadline:
			t.Fatalf("no bind failure logged within 20s:\n%s", errOut.String())
		}
	}
	if !portTaken(errOut.String()) {
		t.Errorf("the proxy's bind failure does not say the address is in use:\n%s", errOut.String())
	}
}
