package controlplane

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki/pkitest"
)

// startRunner runs r until the test ends and waits for its first reload.
func startRunner(t *testing.T, r *Runner) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-r.Loaded():
	case err := <-ran:
		t.Fatalf("Run returned before its first reload: %v", err)
	case <-ctx.Done():
		t.Fatal("no first reload")
	}
	return ctx
}

// TestReloadsAreSerialized: file events, Reload (SIGHUP) and ReloadWait
// from many goroutines never load two models at once, so no older model
// can be published after a newer one.
func TestReloadsAreSerialized(t *testing.T) {
	s := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	var inFlight, most atomic.Int32
	var loads atomic.Uint64
	r, err := New(Options{CertsDir: s.Certs, ConfigDir: s.Config, HoldOff: 1, MaxDelay: 1, Resync: -1,
		Load: func(certs, cfg string) (*config.Model, error) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			loads.Add(1)
			return config.Load(certs, cfg)
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := startRunner(t, r)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 5 {
				if i%2 == 0 {
					// A file event as well: the watcher's reloads join the same loop.
					s.Tree.Server("default", s.Server)
				}
				r.Reload()
				if _, err := r.ReloadWait(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Settle: one more reload through the loop covers any pending request.
	if _, err := r.ReloadWait(ctx); err != nil {
		t.Fatal(err)
	}
	if m := most.Load(); m != 1 {
		t.Errorf("%d loads ran at once; the loop must run one at a time", m)
	}
	// A late file event may still start a reload after the settle: wait
	// for the loop to be idle and published, then every load is counted.
	for {
		upd := r.Updated()
		if inFlight.Load() == 0 && r.Served().Reloads == loads.Load() {
			break
		}
		select {
		case <-upd:
		case <-ctx.Done():
			t.Fatalf("Served().Reloads = %d after %d loads", r.Served().Reloads, loads.Load())
		}
	}
}

// TestUpdatedSignalsEachReload: a test (or anything else) waits for a
// change on Updated(), not by polling.
func TestUpdatedSignalsEachReload(t *testing.T) {
	s := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	r, err := New(Options{CertsDir: s.Certs, ConfigDir: s.Config, HoldOff: 1, Resync: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := startRunner(t, r)
	before := r.Served().Versions[resource.SecretType]
	s.Tree.Server("default", s.CA.Server("localhost", pkitest.IPs("127.0.0.1")))
	for {
		updated := r.Updated()
		if v := r.Served().Versions[resource.SecretType]; v != before {
			break
		}
		select {
		case <-updated:
		case <-ctx.Done():
			t.Fatal("the rotated certificate was never published")
		}
	}
	if got := r.Status().Versions["secrets"]; got == before {
		t.Errorf("/status still shows secrets %s", got)
	}
}

// TestRunOwnsItsResources: New opens nothing, Run may run once, and a
// ReloadWait after Run has returned fails instead of hanging.
func TestRunOwnsItsResources(t *testing.T) {
	s := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	r, err := New(Options{CertsDir: s.Certs, ConfigDir: s.Config, Resync: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	select {
	case <-r.Loaded():
	case <-time.After(wait):
		t.Fatal("no first reload")
	}
	if err := r.Run(ctx); err == nil {
		t.Error("a second Run did not fail")
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReloadWait(context.Background()); err == nil {
		t.Error("ReloadWait after Run returned did not fail")
	}
}
