// Package watcher turns file-system activity under a set of directories into
// a debounced "something changed" signal. It never reads or parses a file:
// the consumer reloads everything and lets content hashes decide what
// changed, so a missed or spurious event costs at most one extra reload.
//
// It watches directories, not files, so atomic renames and Kubernetes
// `..data` symlink swaps are seen; it follows new subdirectories as they
// appear; it watches each root's parent too, so a root moved away and
// re-created (`mv certs certs.old; cp -a certs.old certs`) is watched again; it ignores editors' temp files, dotfiles and chmod-only events; it
// debounces with a hold-off and a maximum delay (as Contour's event handler
// does); and a slow periodic resync backs it all up, because inotify drops
// events on queue overflow and never sees changes behind some mounts.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults for Options.
const (
	DefaultHoldOff  = 50 * time.Millisecond
	DefaultMaxDelay = 500 * time.Millisecond
	DefaultResync   = 30 * time.Second
)

// maxDepth bounds the directory walk: a certificate tree is shallow, and a
// bound keeps a pathological tree (or a symlink cycle the visited set does not
// catch, e.g. through a bind mount) from walking forever.
const maxDepth = 16

// Options configures a Watcher. Zero durations take the defaults.
type Options struct {
	// Dirs are the roots to watch, recursively. Each must exist.
	Dirs []string
	// HoldOff is the quiet time after the last event before signalling.
	HoldOff time.Duration
	// MaxDelay caps the time from the first event of a burst to the signal,
	// so continuous writes cannot postpone a reload forever.
	MaxDelay time.Duration
	// Resync is the period of the unconditional signal; negative disables it.
	Resync time.Duration
	// Logger receives watch errors; nil discards them.
	Logger *slog.Logger
}

// Watcher signals on C after relevant changes under its directories.
type Watcher struct {
	opts Options
	log  *slog.Logger
	fs   *fsnotify.Watcher
	c    chan struct{}

	// roots are opts.Dirs, cleaned. parents are the directories that hold
	// a root and lie outside every root: watched only to see a root come
	// and go, so their other entries are noise.
	roots, parents map[string]bool

	closeOnce sync.Once
	closeErr  error

	// trace, when set (tests only), sees every event with the verdict.
	trace func(ev fsnotify.Event, relevant bool)
}

// New watches every directory under opts.Dirs. Changes made after New
// returns are seen; call Run to deliver signals.
func New(opts Options) (*Watcher, error) {
	if len(opts.Dirs) == 0 {
		return nil, errors.New("watcher: no directory to watch")
	}
	if opts.HoldOff <= 0 {
		opts.HoldOff = DefaultHoldOff
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.MaxDelay < opts.HoldOff {
		opts.MaxDelay = opts.HoldOff
	}
	if opts.Resync == 0 {
		opts.Resync = DefaultResync
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := CheckDirs(opts.Dirs); err != nil {
		return nil, err
	}
	fw, err := fsnotify.NewBufferedWatcher(1024)
	if err != nil {
		return nil, fmt.Errorf("watcher: %w", err)
	}
	w := &Watcher{opts: opts, log: log, fs: fw, c: make(chan struct{}, 1), roots: map[string]bool{}, parents: map[string]bool{}}
	for _, d := range opts.Dirs {
		w.roots[filepath.Clean(d)] = true
	}
	for _, d := range opts.Dirs {
		if err := w.addTree(d); err != nil {
			fw.Close()
			return nil, err
		}
	}
	w.watchParents()
	return w, nil
}

// CheckDirs reports, as New would, a directory that cannot be watched
// because it is missing or not a directory. It opens nothing: a caller
// that creates its watcher later can fail early, before serving anything.
func CheckDirs(dirs []string) error {
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("watcher: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("watcher: %s is not a directory", d)
		}
	}
	return nil
}

// watchParents watches the directory holding each root, so that the root's
// re-creation is an event like any other. Without it, moving a root away
// and copying it back leaves every watch on the moved-away tree and the new
// one unwatched until a restart.
func (w *Watcher) watchParents() {
	for root := range w.roots {
		parent := filepath.Dir(root)
		if parent == root || w.inTree(parent) {
			continue // "/" has no parent; a root inside another is seen anyway
		}
		if err := w.fs.Add(parent); err != nil {
			w.log.Warn("cannot watch the directory holding a root: its re-creation will be seen at the next resync only", "dir", parent, "err", err)
			continue
		}
		w.parents[parent] = true
	}
}

// inTree reports whether path is a root or lies below one.
func (w *Watcher) inTree(path string) bool {
	for root := range w.roots {
		if path == root || strings.HasPrefix(path, root+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// C delivers one value per debounced burst of changes, and one per resync
// period. It is buffered by one: signals coalesce while the consumer is busy,
// which is what a "reload everything" consumer wants.
func (w *Watcher) C() <-chan struct{} { return w.c }

// Close stops watching. Run returns soon after.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() { w.closeErr = w.fs.Close() })
	return w.closeErr
}

// Run delivers signals until ctx is done or the watcher is closed, then
// closes the watcher.
func (w *Watcher) Run(ctx context.Context) {
	defer w.Close()

	// One timer serves both limits: it is re-armed to the earlier of
	// "last event + hold-off" and "first event + max delay".
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var first time.Time // zero when no burst is pending

	var resync <-chan time.Time
	if w.opts.Resync > 0 {
		t := time.NewTicker(w.opts.Resync)
		defer t.Stop()
		resync = t.C
	}

	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			relevant := w.handle(ev)
			if w.trace != nil {
				w.trace(ev, relevant)
			}
			if !relevant {
				continue
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			fire := now.Add(w.opts.HoldOff)
			if limit := first.Add(w.opts.MaxDelay); limit.Before(fire) {
				fire = limit
			}
			timer.Reset(time.Until(fire))
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			// An overflow means events were lost: rescan and reload now.
			w.log.Warn("file watch error; rescanning", "err", err)
			w.rewatch()
			w.signal()
		case <-timer.C:
			first = time.Time{}
			w.signal()
		case <-resync:
			w.rewatch()
			w.signal()
		}
	}
}

func (w *Watcher) signal() {
	select {
	case w.c <- struct{}{}:
	default: // one is already pending: it covers this change too
	}
}

// rewatch walks every root again, so that a watch lost to a missed event
// comes back by the next resync at the latest. Watching a watched directory
// again costs one system call and no new watch.
func (w *Watcher) rewatch() {
	for _, d := range w.opts.Dirs {
		if err := w.addTree(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.Warn("rescan failed", "dir", d, "err", err)
		}
	}
}

// handle updates the watch set for ev and reports whether ev should lead to
// a reload.
func (w *Watcher) handle(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Clean(ev.Name)
	if ignored(filepath.Base(name)) {
		return false
	}
	if w.parents[filepath.Dir(name)] && !w.roots[name] {
		return false // a sibling of a root
	}
	if ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) {
		w.unwatchBelow(name)
	}
	if ev.Has(fsnotify.Create) {
		// A new directory (or a symlink to one) must be watched before files
		// land in it; walking it also catches files created before the
		// watch was in place.
		if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
			if err := w.addTree(ev.Name); err != nil {
				w.log.Warn("cannot watch new directory", "dir", ev.Name, "err", err)
			}
		}
	}
	return true
}

// unwatchBelow drops the watches on dir and below after it was moved away
// or removed. inotify watches follow an inode, so the watches of a moved
// tree would keep reporting its changes under the old names, and each
// re-creation would leak a tree of kernel watches; the Create of whatever
// takes dir's place watches it afresh.
func (w *Watcher) unwatchBelow(dir string) {
	prefix := dir + string(filepath.Separator)
	for _, p := range w.fs.WatchList() {
		if (p == dir || strings.HasPrefix(p, prefix)) && !w.parents[p] {
			_ = w.fs.Remove(p) // already gone when the kernel dropped it
		}
	}
}

// ignored reports whether a file name is noise: editors' swap and backup
// files, and dotfiles, except Kubernetes' `..data`, whose replacement is how
// a mounted Secret or ConfigMap changes atomically.
func ignored(base string) bool {
	switch {
	case base == "..data":
		return false
	case strings.HasPrefix(base, "."):
		return true
	case strings.HasSuffix(base, "~"),
		strings.HasSuffix(base, ".swp"),
		strings.HasSuffix(base, ".swx"),
		base == "4913": // vim probes directory writability with this name
		return true
	}
	return false
}

// addTree watches root and every directory below it that is not ignored,
// following symlinks to directories once each.
func (w *Watcher) addTree(root string) error {
	visited := map[string]bool{}
	return w.addDir(root, 0, visited)
}

func (w *Watcher) addDir(dir string, depth int, visited map[string]bool) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("watcher: %w", err)
	}
	if visited[real] || depth > maxDepth {
		return nil
	}
	visited[real] = true
	if err := w.fs.Add(dir); err != nil {
		return fmt.Errorf("watcher: watch %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("watcher: %w", err)
	}
	for _, e := range entries {
		if ignored(e.Name()) || e.Name() == "..data" {
			// ..data is a symlink into a dot directory; its swap is seen in
			// dir itself, so there is nothing below it to watch.
			continue
		}
		p := filepath.Join(dir, e.Name())
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			fi, err := os.Stat(p)
			isDir = err == nil && fi.IsDir()
		}
		if !isDir {
			continue
		}
		if err := w.addDir(p, depth+1, visited); err != nil {
			// A subdirectory that vanished or cannot be read must not stop
			// the others from being watched; the loader reports the file.
			w.log.Warn("cannot watch directory", "dir", p, "err", err)
		}
	}
	return nil
}
