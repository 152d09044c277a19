package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// DefaultMaxFileSize bounds every file the loader reads. Certificates, keys,
// CRLs and YAML files of a sane deployment are far smaller; a bigger file is
// a mistake (a disk image, a log) and must not be read into memory.
const DefaultMaxFileSize = 1 << 20

// DefaultMaxTrustFileSize bounds the files of a trust store. They may carry
// CRLs, and a CA that has revoked a million certificates publishes a CRL of
// about 50 MB in PEM: still a CRL, not a mistake.
const DefaultMaxTrustFileSize = 128 << 20

// DefaultMaxTrustStoreSize bounds the total size of the files of one trust
// store, checked from their sizes before any is read: eight files each just
// under DefaultMaxTrustFileSize once took the proxy to 1.68 GB. It equals
// the per-file limit, so the largest CRL allowed still fits alone, and so do
// an AWS ALB-sized CRL (50 MB) beside a CRL of a million serials (about
// 54 MB in PEM). Parsing costs many times the bytes, so the store total is
// what bounds the memory a trust store can take.
const DefaultMaxTrustStoreSize = 128 << 20

// ignoredName reports whether a directory entry is invisible to the loader:
// dotfiles and dot-directories (including Kubernetes' ..data and ..2026_x,
// which are read through the symlinks that point into them) and editor
// temporary files.
func ignoredName(name string) bool {
	switch {
	case strings.HasPrefix(name, "."),
		strings.HasSuffix(name, "~"),
		strings.HasSuffix(name, ".swp"),
		strings.HasSuffix(name, ".swx"),
		strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"):
		return true
	}
	return false
}

// entry is one visible directory entry with symlinks resolved.
type entry struct {
	name string
	path string
	info fs.FileInfo // of the target when name is a symlink
	err  error       // set when the target cannot be reached
}

// listDir lists the visible entries of dir, sorted by name, following
// symlinks. An entry whose target cannot be reached (a loop, a dangling
// link) carries err instead of info. A missing dir lists as empty.
func listDir(dir string) ([]entry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fileErr(dir, fmt.Errorf("cannot list directory: %w", unwrapPathError(err)))
	}
	out := make([]entry, 0, len(des))
	for _, de := range des {
		if ignoredName(de.Name()) {
			continue
		}
		p := filepath.Join(dir, de.Name())
		info, err := statFollow(p)
		out = append(out, entry{name: de.Name(), path: p, info: info, err: err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// statFollow stats path through any symlinks and turns the errors an
// operator can meet into sentences that name the path.
func statFollow(path string) (fs.FileInfo, error) {
	info, err := os.Stat(path)
	if err == nil {
		return info, nil
	}
	switch {
	case errors.Is(err, syscall.ELOOP):
		return nil, fileErr(path, fmt.Errorf("symbolic link loop: %w", syscall.ELOOP))
	case errors.Is(err, fs.ErrNotExist):
		if target, lerr := os.Readlink(path); lerr == nil {
			return nil, fileErr(path, fmt.Errorf("broken symbolic link to %s: %w", target, fs.ErrNotExist))
		}
		return nil, fileErr(path, fmt.Errorf("missing: %w", fs.ErrNotExist))
	default:
		return nil, fileErr(path, fmt.Errorf("cannot read: %w", unwrapPathError(err)))
	}
}

// readFile reads one regular file of at most limit bytes, following symlinks.
func readFile(path string, limit int64) ([]byte, fs.FileInfo, error) {
	start := time.Now()
	info, err := statFollow(path)
	if err != nil {
		return nil, nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, nil, fileErr(path, fmt.Errorf("not a regular file (%s)", fileKind(info.Mode())))
	}
	if info.Size() > limit {
		return nil, nil, fileErr(path, fmt.Errorf("file is %d bytes, over the limit of %d bytes", info.Size(), limit))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fileErr(path, fmt.Errorf("cannot read: %w", unwrapPathError(err)))
	}
	defer f.Close()
	// The opened file is the one read: its size and mtime key the parse
	// cache with its content (a rename after the Stat above is seen here).
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		info = fi
	}
	// Read into a buffer of the size stat gives (io.ReadAll grows by
	// doubling: a 35 MB CRL cost 64 MB and a copy per reload); the file
	// may grow between Stat and Read: never read past the limit.
	data, err := readAllSized(io.LimitReader(f, limit+1), min(info.Size(), limit))
	if err != nil {
		return nil, nil, fileErr(path, fmt.Errorf("cannot read: %w", unwrapPathError(err)))
	}
	if int64(len(data)) > limit {
		return nil, nil, fileErr(path, fmt.Errorf("file is over the limit of %d bytes", limit))
	}
	return data, readInfo{FileInfo: info, at: start}, nil
}

// readInfo is the FileInfo of a file as read, with the moment the read
// started: the parse cache measures a file's age from it (racyWindowOf).
type readInfo struct {
	fs.FileInfo
	at time.Time
}

// readAllSized reads r to its end into a buffer of size+1 bytes, growing
// it only when r holds more than size bytes.
func readAllSized(r io.Reader, size int64) ([]byte, error) {
	buf := make([]byte, size+1)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return buf[:n], nil
	case err != nil:
		return nil, err
	}
	rest, err := io.ReadAll(r) // it grew since the Stat
	return append(buf, rest...), err
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return m.Type().String()
	}
}

// unwrapPathError drops the *fs.PathError wrapper whose text repeats the
// path we already name, keeping the errno for errors.Is.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
