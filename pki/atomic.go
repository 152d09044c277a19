package pki

import (
	"fmt"
	"os"
	"path/filepath"
)

// File is one file to write: its path, content and mode.
type File struct {
	Path string
	Data []byte
	Mode os.FileMode // 0600 for keys; 0644 for certificates and CRLs
}

// WriteFileAtomic writes data to path so that a reader (or a directory
// watcher) sees either the old file or the complete new one, never a partial
// one: it writes a temporary file in the same directory, syncs it, then
// renames it over path. On any error nothing new is left behind.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return WriteFilesAtomic(File{Path: path, Data: data, Mode: mode})
}

// WriteFilesAtomic writes several files as one step as far as a filesystem
// allows: every file is staged (written and synced to a temporary file beside
// its target) before any is renamed into place. A failure while staging, the
// usual case (unwritable directory, full disk), leaves no file behind, old or
// new. The renames themselves only fail in exotic cases; a file already
// renamed then stays in place.
func WriteFilesAtomic(files ...File) error {
	staged := make([]*stagedFile, 0, len(files))
	abort := func() {
		for _, s := range staged {
			s.abort()
		}
	}
	for _, f := range files {
		s, err := stage(f)
		if err != nil {
			abort()
			return err
		}
		staged = append(staged, s)
	}
	for i, s := range staged {
		if err := s.commit(); err != nil {
			for _, rest := range staged[i+1:] {
				rest.abort()
			}
			return err
		}
	}
	return nil
}

// stagedFile is a complete, synced temporary file waiting to be renamed.
type stagedFile struct {
	tmp, path string
}

func stage(f File) (*stagedFile, error) {
	dir := filepath.Dir(f.Path)
	// The leading dot makes watchers that ignore dotfiles skip the temp file.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", f.Path, err)
	}
	name := tmp.Name()
	fail := func(err error) (*stagedFile, error) {
		_ = tmp.Close()
		_ = os.Remove(name)
		return nil, fmt.Errorf("write %s: %w", f.Path, err)
	}
	// CreateTemp makes the file 0600; widen only for public material. Chmod
	// rather than umask-dependent creation so the mode is exactly as asked.
	if err := tmp.Chmod(f.Mode); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(f.Data); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(name)
		return nil, fmt.Errorf("write %s: %w", f.Path, err)
	}
	return &stagedFile{tmp: name, path: f.Path}, nil
}

func (s *stagedFile) commit() error {
	if err := os.Rename(s.tmp, s.path); err != nil {
		_ = os.Remove(s.tmp)
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	syncDir(filepath.Dir(s.path))
	return nil
}

func (s *stagedFile) abort() { _ = os.Remove(s.tmp) }

// syncDir makes a rename durable. Some filesystems refuse fsync on a
// directory; the rename has happened either way, so that is not an error.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
