package pkitest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/certplane/certplane/pki"
)

// Tree is a certificate directory and a config directory side by side under
// one temporary root, laid out as DESIGN.md "Certificate directory" says.
type Tree struct {
	tb     testing.TB
	Root   string // tb.TempDir()
	Certs  string // Root/certs: holds server/, client/ and trust/
	Config string // Root/config
}

// NewTree creates Root/certs/{server,client,trust} and Root/config, empty.
func NewTree(tb testing.TB) *Tree {
	tb.Helper()
	root := tb.TempDir()
	t := &Tree{tb: tb, Root: root, Certs: filepath.Join(root, "certs"), Config: filepath.Join(root, "config")}
	for _, d := range []string{"server", "client", "trust"} {
		t.mkdir(filepath.Join(t.Certs, d))
	}
	t.mkdir(t.Config)
	return t
}

func (t *Tree) mkdir(dir string) {
	t.tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.tb.Fatalf("pkitest: %v", err)
	}
}

// Write writes data to Root/rel atomically, creating parent directories.
// It returns the absolute path.
func (t *Tree) Write(rel string, data []byte, mode os.FileMode) string {
	t.tb.Helper()
	path := filepath.Join(t.Root, rel)
	t.mkdir(filepath.Dir(path))
	if err := pki.WriteFileAtomic(path, data, mode); err != nil {
		t.tb.Fatalf("pkitest: %v", err)
	}
	return path
}

// Remove deletes Root/rel (a file or a whole directory).
func (t *Tree) Remove(rel string) {
	t.tb.Helper()
	if err := os.RemoveAll(filepath.Join(t.Root, rel)); err != nil {
		t.tb.Fatalf("pkitest: %v", err)
	}
}

// keyPair writes cert then key, each atomically, and returns their paths.
// The key goes last so that a watcher that sees the key sees the cert too.
func (t *Tree) keyPair(certRel, keyRel string, l *Leaf) (certFile, keyFile string) {
	t.tb.Helper()
	certFile = t.Write(certRel, l.CertPEM(), 0o644)
	keyFile = t.Write(keyRel, l.KeyPEM(), 0o600)
	return certFile, keyFile
}

// Server writes certs/server/<name>/tls.crt (leaf + chain) and tls.key.
func (t *Tree) Server(name string, l *Leaf) (certFile, keyFile string) {
	t.tb.Helper()
	return t.keyPair(filepath.Join("certs", "server", name, "tls.crt"), filepath.Join("certs", "server", name, "tls.key"), l)
}

// ServerFlat writes certs/server/<name>.crt (leaf + chain) and <name>.key.
func (t *Tree) ServerFlat(name string, l *Leaf) (certFile, keyFile string) {
	t.tb.Helper()
	return t.keyPair(filepath.Join("certs", "server", name+".crt"), filepath.Join("certs", "server", name+".key"), l)
}

// Client writes certs/client/<name>/tls.crt (leaf + chain) and tls.key.
func (t *Tree) Client(name string, l *Leaf) (certFile, keyFile string) {
	t.tb.Helper()
	return t.keyPair(filepath.Join("certs", "client", name, "tls.crt"), filepath.Join("certs", "client", name, "tls.key"), l)
}

// ClientFlat writes certs/client/<name>.crt (leaf + chain) and <name>.key.
func (t *Tree) ClientFlat(name string, l *Leaf) (certFile, keyFile string) {
	t.tb.Helper()
	return t.keyPair(filepath.Join("certs", "client", name+".crt"), filepath.Join("certs", "client", name+".key"), l)
}

// Trust writes certs/trust/<store>/<file> holding the concatenation of
// blocks (CA PEM, CRL PEM or DER, in any mix) and returns its path.
func (t *Tree) Trust(store, file string, blocks ...[]byte) string {
	t.tb.Helper()
	var data []byte
	for _, b := range blocks {
		data = append(data, b...)
	}
	return t.Write(filepath.Join("certs", "trust", store, file), data, 0o644)
}

// WriteConfig writes config/<file> and returns its path.
func (t *Tree) WriteConfig(file, yaml string) string {
	t.tb.Helper()
	return t.Write(filepath.Join("config", file), []byte(yaml), 0o644)
}

// KubeSecret writes a key pair under certs/<rel> the way the kubelet mounts
// a kubernetes.io/tls Secret:
//
//	<rel>/..2026_<random>/tls.crt, tls.key   the real files
//	<rel>/..data -> ..2026_<random>          swapped by one rename
//	<rel>/tls.crt -> ..data/tls.crt          stable symlinks
//	<rel>/tls.key -> ..data/tls.key
//
// Calling it again for the same rel rotates the pair exactly as the kubelet
// does: new timestamped directory, atomic rename of ..data, old directory
// removed. rel is relative to Certs, for example "server/default".
func (t *Tree) KubeSecret(rel string, l *Leaf) {
	t.tb.Helper()
	dir := filepath.Join(t.Certs, rel)
	t.mkdir(dir)
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.tb.Fatalf("pkitest: %v", err)
	}
	ts := "..2026_" + hex.EncodeToString(rnd[:])
	t.mkdir(filepath.Join(dir, ts))
	crt := filepath.Join(dir, ts, "tls.crt")
	key := filepath.Join(dir, ts, "tls.key")
	if err := pki.WriteFilesAtomic(
		pki.File{Path: crt, Data: l.CertPEM(), Mode: 0o644},
		pki.File{Path: key, Data: l.KeyPEM(), Mode: 0o600},
	); err != nil {
		t.tb.Fatalf("pkitest: %v", err)
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(ts, tmpLink); err != nil {
		t.tb.Fatalf("pkitest: %v", err)
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, "..data")); err != nil {
		t.tb.Fatalf("pkitest: %v", err)
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		link := filepath.Join(dir, f)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", f), link); err != nil {
			t.tb.Fatalf("pkitest: %v", err)
		}
	}
	if old != "" && old != ts {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.tb.Fatalf("pkitest: %v", err)
		}
	}
}
