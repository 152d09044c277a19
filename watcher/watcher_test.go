package watcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// deadline bounds every wait for a signal; generous for a loaded CI box.
const deadline = 5 * time.Second

type traced struct {
	name     string
	relevant bool
	at       time.Time // when the watcher judged it
}

// start builds a watcher on dir, records each verdict on the returned
// channel, and runs it until the test ends.
func start(t *testing.T, opts Options) (*Watcher, <-chan traced) {
	t.Helper()
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	tr := make(chan traced, 4096)
	w.trace = func(ev fsnotify.Event, relevant bool) {
		select {
		case tr <- traced{ev.Name, relevant, time.Now()}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w, tr
}

func waitSignal(t *testing.T, w *Watcher, what string) time.Time {
	t.Helper()
	select {
	case <-w.C():
		return time.Now()
	case <-time.After(deadline):
		t.Fatalf("no signal within %v after %s", deadline, what)
		return time.Time{}
	}
}

// waitTraced waits until the watcher has judged an event on name.
func waitTraced(t *testing.T, tr <-chan traced, name string) traced {
	t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case e := <-tr:
			if e.name == name {
				return e
			}
		case <-timeout:
			t.Fatalf("watcher never saw an event on %s", name)
		}
	}
}

// noSignal asserts that no signal is pending now and none comes within d.
// It waits for a non-event, so a bounded wait is the only possible check.
func noSignal(t *testing.T, w *Watcher, d time.Duration, why string) {
	t.Helper()
	select {
	case <-w.C():
		t.Fatalf("unexpected signal: %s", why)
	case <-time.After(d):
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAtomicRename(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "tls.crt"), "old")
	w, tr := start(t, Options{Dirs: []string{dir}, HoldOff: 20 * time.Millisecond, Resync: -1})

	// The temp file is a dotfile: ignored on its own.
	tmp := filepath.Join(dir, ".tls.crt.tmp")
	write(t, tmp, "new")
	if e := waitTraced(t, tr, tmp); e.relevant {
		t.Fatalf("dotfile %s judged relevant", tmp)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "tls.crt")); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, "atomic rename")
}

func TestIgnoresNoise(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "tls.crt")
	write(t, target, "x")
	w, tr := start(t, Options{Dirs: []string{dir}, HoldOff: 10 * time.Millisecond, Resync: -1})

	for _, n := range []string{"tls.crt~", ".tls.crt.swp", "tls.crt.swx", "4913", ".hidden", "..data_tmp"} {
		p := filepath.Join(dir, n)
		write(t, p, "x")
		if e := waitTraced(t, tr, p); e.relevant {
			t.Errorf("%s judged relevant", n)
		}
	}
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	if e := waitTraced(t, tr, target); e.relevant {
		t.Errorf("chmod-only event on %s judged relevant", target)
	}
	// Every event above has been judged and none armed the timer, so a
	// signal now could only come from a bug.
	noSignal(t, w, 100*time.Millisecond, "after ignored events only")
}

func TestKubernetesDataSwap(t *testing.T) {
	// The layout kubelet's AtomicWriter makes for a mounted Secret.
	dir := t.TempDir()
	mkTS := func(name, content string) {
		ts := filepath.Join(dir, name)
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(ts, "tls.crt"), content)
	}
	mkTS("..2024_01_01_00_00_00.1", "v1")
	if err := os.Symlink("..2024_01_01_00_00_00.1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/tls.crt", filepath.Join(dir, "tls.crt")); err != nil {
		t.Fatal(err)
	}
	w, _ := start(t, Options{Dirs: []string{dir}, HoldOff: 10 * time.Millisecond, Resync: -1})

	mkTS("..2024_01_01_00_00_01.2", "v2")
	if err := os.Symlink("..2024_01_01_00_00_01.2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, "..data swap")
	got, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil || string(got) != "v2" {
		t.Fatalf("tls.crt = %q, %v; the swap did not happen", got, err)
	}
}

func TestNewSubdirectory(t *testing.T) {
	dir := t.TempDir()
	w, tr := start(t, Options{Dirs: []string{dir}, HoldOff: 10 * time.Millisecond, Resync: -1})

	sub := filepath.Join(dir, "server", "payments")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	waitTraced(t, tr, filepath.Join(dir, "server"))
	waitSignal(t, w, "mkdir")

	// The nested directory made in the same breath must be watched too:
	// a file written in it, alone, signals.
	f := filepath.Join(sub, "tls.crt")
	deadlineAt := time.Now().Add(deadline)
	for {
		// Until the watcher has walked the new tree the write may precede
		// the watch; the walk itself is what this waits for.
		write(t, f, "x")
		select {
		case e := <-tr:
			if e.name == f {
				waitSignal(t, w, "write in new subdirectory")
				return
			}
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadlineAt) {
			t.Fatalf("no event for %s: new subdirectory not watched", f)
		}
	}
}

func TestBurstCoalesced(t *testing.T) {
	dir := t.TempDir()
	hold := 150 * time.Millisecond
	w, tr := start(t, Options{Dirs: []string{dir}, HoldOff: hold, MaxDelay: 10 * time.Second, Resync: -1})

	const n = 50
	for i := range n {
		write(t, filepath.Join(dir, fmt.Sprintf("f%02d.pem", i)), "x")
	}
	// Every write must have been seen before the signal can be judged.
	seen := map[string]bool{}
	timeout := time.After(deadline)
	for len(seen) < n {
		select {
		case e := <-tr:
			seen[e.name] = true
		case <-timeout:
			t.Fatalf("saw %d of %d writes", len(seen), n)
		}
	}
	waitSignal(t, w, "burst")
	noSignal(t, w, 3*hold, "a burst of writes must give exactly one signal")
}

func TestMaxDelayUnderContinuousWrites(t *testing.T) {
	dir := t.TempDir()
	hold, maxDelay := 200*time.Millisecond, 400*time.Millisecond
	w, tr := start(t, Options{Dirs: []string{dir}, HoldOff: hold, MaxDelay: maxDelay, Resync: -1})

	// A writer faster than the hold-off: without the max delay the hold-off
	// would never expire while it runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	f := filepath.Join(dir, "crl.pem")
	first := time.Now() // no event can be judged before the write
	write(t, f, "0")
	waitTraced(t, tr, f)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = os.WriteFile(f, []byte(fmt.Sprint(i)), 0o600)
			}
		}
	}()
	got := waitSignal(t, w, "continuous writes")
	close(stop)
	wg.Wait()
	// On a starved machine the writer can stall longer than the hold-off,
	// which then rightly fires first: that run cannot judge the max delay.
	last, gap := time.Time{}, time.Duration(0)
	for drained := false; !drained; {
		select {
		case e := <-tr:
			if !e.relevant || e.at.After(got) {
				continue
			}
			if !last.IsZero() && e.at.Sub(last) > gap {
				gap = e.at.Sub(last)
			}
			last = e.at
		default:
			drained = true
		}
	}
	if gap >= hold || got.Sub(last) >= hold {
		t.Skipf("the writer stalled for %v (hold-off %v): the machine is too loaded to judge the max delay", max(gap, got.Sub(last)), hold)
	}
	elapsed := got.Sub(first)
	if elapsed < maxDelay || elapsed > maxDelay+time.Second {
		t.Fatalf("signal after %v under continuous writes; want about the max delay %v", elapsed, maxDelay)
	}
}

func TestResyncSignalsWithoutEvents(t *testing.T) {
	dir := t.TempDir()
	w, _ := start(t, Options{Dirs: []string{dir}, Resync: 30 * time.Millisecond})
	waitSignal(t, w, "resync period")
	waitSignal(t, w, "second resync period")
}

func TestSymlinkLoopDoesNotHang(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(".", filepath.Join(dir, "loop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b", filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	w, _ := start(t, Options{Dirs: []string{dir}, HoldOff: 10 * time.Millisecond, Resync: -1})
	write(t, filepath.Join(dir, "tls.crt"), "x")
	waitSignal(t, w, "write beside symlink loops")
}

func TestNewRejectsMissingDir(t *testing.T) {
	_, err := New(Options{Dirs: []string{filepath.Join(t.TempDir(), "absent")}})
	if err == nil {
		t.Fatal("New accepted a missing directory")
	}
	if _, err := New(Options{}); err == nil || err.Error() != "watcher: no directory to watch" {
		t.Fatalf("New with no dirs: %v", err)
	}
}
