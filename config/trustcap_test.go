package config_test

import (
	"fmt"
	"github.com/certplane/certplane/config"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestTrustStoreCap is issue #11 item 9 (trust stores): eight files of
// 127 MiB, each under the per-file limit, make a store of 1016 MiB. The
// store is refused by its total before any file is read: the error names
// the store and its largest files, loading returns at once, and it
// allocates nothing like the files' size. The files are sparse (Truncate),
// so the test itself costs no disk.
func TestTrustStoreCap(t *testing.T) {
	f := newFixture(t)
	dir := f.path("certs/trust/clients")
	for i := range 8 {
		fl, err := os.Create(filepath.Join(dir, "huge"+string(rune('1'+i))+".crl"))
		if err != nil {
			t.Fatal(err)
		}
		if err := fl.Truncate(127 << 20); err != nil {
			t.Fatal(err)
		}
		fl.Close()
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	m := f.load()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc

	var found string
	for _, p := range m.Problems {
		if s := p.Err.Error(); strings.Contains(s, `trust store "clients"`) && strings.Contains(s, "over the limit of 134217728 bytes") {
			found = s
		}
	}
	if found == "" {
		t.Errorf("no problem names the store over the cap; problems:\n%s", strings.Join(f.render(m.Problems), "\n"))
	}
	var total int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		total += info.Size()
	}
	for _, want := range []string{dir + ":", fmt.Sprintf("%d bytes in %d files", total, len(entries)), "huge1.crl (133169152 bytes)", "nothing was read"} {
		if !strings.Contains(found, want) {
			t.Errorf("the cap error lacks %q:\n%s", want, found)
		}
	}
	if m.Trust["clients"] != nil {
		t.Error("the store over the cap is in the model")
	}
	if allocated > 32<<20 {
		t.Errorf("loading allocated %d MiB: the oversized files were read", allocated>>20)
	}
	t.Logf("store of 8 x 127 MiB refused in %v, %d KiB allocated", took.Round(time.Millisecond), allocated>>10)
}

// TestTrustStoreCapKnob: the cap is a knob, and a store under it loads.
func TestTrustStoreCapKnob(t *testing.T) {
	f := newFixture(t)
	m, err := config.Loader{MaxTrustStoreSize: 1 << 10}.Load(f.path("certs"), f.path("config"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Trust["clients"] != nil || !strings.Contains(strings.Join(f.render(m.Problems), "\n"), `over the limit of 1024 bytes`) {
		t.Errorf("store over a 1 KiB cap: problems %v", f.render(m.Problems))
	}
	if m := f.load(); m.Trust["clients"] == nil {
		t.Errorf("store under the default cap refused: %v", f.render(m.Problems))
	}
}
