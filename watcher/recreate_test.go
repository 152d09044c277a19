package watcher

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// quiet drains signals until none has come for d: the burst that a move and
// a copy cause is over.
func quiet(t *testing.T, w *Watcher, d time.Duration) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		select {
		case <-w.C():
			if time.Now().After(end) {
				t.Fatalf("signals never stopped for %v", d)
			}
		case <-time.After(d):
			return
		}
	}
}

// recreate moves dir away and copies it back as an operator does
// (`mv certs certs.old; cp -a certs.old certs`).
func recreate(t *testing.T, dir string) {
	t.Helper()
	old := dir + ".old"
	if err := os.Rename(dir, old); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", old, dir).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
}

// TestRecreatedDirectoriesStayWatched re-creates a watched root, then a
// directory below it, and checks that a write in the new tree still
// signals. The resync is off: only the watches can deliver the signal.
func TestRecreatedDirectoriesStayWatched(t *testing.T) {
	parent := t.TempDir()
	certs := filepath.Join(parent, "certs")
	config := filepath.Join(parent, "config")
	store := filepath.Join(certs, "trust", "ta")
	for _, d := range []string{store, config} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(store, "ca.crl"), "v1")
	write(t, filepath.Join(config, "a.yaml"), "v1")
	w, _ := start(t, Options{Dirs: []string{certs, config}, HoldOff: 10 * time.Millisecond, Resync: -1})
	watched := w.fs.WatchList()
	slices.Sort(watched)

	for _, c := range []struct{ name, dir, file string }{
		{"trust store directory", store, filepath.Join(store, "ca.crl")},
		{"certs root", certs, filepath.Join(store, "ca.crl")},
		{"config root", config, filepath.Join(config, "a.yaml")},
		{"certs root again", certs, filepath.Join(store, "ca.crl")},
	} {
		t.Run(c.name, func(t *testing.T) {
			recreate(t, c.dir)
			quiet(t, w, 300*time.Millisecond)
			if err := os.RemoveAll(c.dir + ".old"); err != nil {
				t.Fatal(err)
			}
			quiet(t, w, 300*time.Millisecond)
			write(t, c.file, "v2 after re-creating "+c.name)
			waitSignal(t, w, "a write in the re-created "+c.name)
			// The moved-away tree's watches are gone, none leaks.
			now := w.fs.WatchList()
			slices.Sort(now)
			if !slices.Equal(now, watched) {
				t.Errorf("watches after re-creating %s:\n%q\nwant\n%q", c.name, now, watched)
			}
		})
	}
}
