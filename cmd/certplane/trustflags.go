package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/certplane/certplane/config"
)

// trustFlags are the trust-store flags that serve, proxy and check share.
type trustFlags struct {
	stateDir string
	maxStore sizeFlag
}

// addTrustFlags registers --state-dir and --max-trust-store-size.
func addTrustFlags(fs *flag.FlagSet, readOnly bool) *trustFlags {
	f := &trustFlags{}
	f.register(fs, readOnly)
	return f
}

// register adds the flags to fs. check reads the state directory of a serve
// or proxy and never writes it. The zero trustFlags, unregistered, means
// the defaults.
func (f *trustFlags) register(fs *flag.FlagSet, readOnly bool) {
	f.maxStore = sizeFlag{n: config.DefaultMaxTrustStoreSize}
	help := "directory where the newest CRL of each CA is kept (created mode 0700), so that after a restart an older CRL is still refused; " +
		"without it that memory lasts as long as the process, and a restart trusts the CRLs on disk"
	if readOnly {
		help = "state directory of a serve or proxy (their --state-dir), read and never written: a CRL older than the one kept there is reported"
	}
	fs.StringVar(&f.stateDir, "state-dir", "", help)
	fs.Var(&f.maxStore, "max-trust-store-size", "largest total size of the files of one trust store (e.g. 128MiB, 1GiB); a larger store is refused before any of it is read, and its last good version stays served")
}

// set reports whether either flag was given on the command line.
func (f *trustFlags) set(fs *flag.FlagSet) bool {
	given := false
	fs.Visit(func(fl *flag.Flag) {
		given = given || fl.Name == "state-dir" || fl.Name == "max-trust-store-size"
	})
	return given
}

// sizeFlag is a byte count: a number of bytes, or one with a KiB, MiB or
// GiB suffix.
type sizeFlag struct{ n int64 }

var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

func (f *sizeFlag) String() string {
	for _, u := range sizeUnits {
		if f.n != 0 && f.n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", f.n>>u.shift, u.suffix)
		}
	}
	return strconv.FormatInt(f.n, 10)
}

func (f *sizeFlag) Set(v string) error {
	num, shift := v, uint(0)
	for _, u := range sizeUnits {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			num, shift = s, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return fmt.Errorf("%q is not a size: want a positive number of bytes, or one with KiB, MiB or GiB", v)
	}
	f.n = n << shift
	return nil
}
