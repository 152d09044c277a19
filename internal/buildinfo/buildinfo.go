// Package buildinfo reports what binary is running: the module version, the
// VCS commit it was built from and the Go toolchain. `certplane version`, the
// xDS client's node user agent and certplane_build_info in /metrics all read
// it here, so the three never disagree.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Info describes the running binary.
type Info struct {
	Version   string // module version (v1.2.3), or "devel" for a build from a checkout
	Commit    string // VCS revision, "" when the build carried none
	Modified  bool   // the checkout had uncommitted changes
	GoVersion string
}

// Set at link time by builds that have no VCS stamp (GOFLAGS=-buildvcs=false,
// a container build without .git):
//
//	go build -ldflags "-X github.com/certplane/certplane/internal/buildinfo.version=v1.2.3 \
//	  -X github.com/certplane/certplane/internal/buildinfo.commit=$(git rev-parse HEAD)"
var version, commit string

var read = sync.OnceValue(func() Info {
	info := fromModule()
	if version != "" {
		info.Version = version
	}
	if commit != "" {
		info.Commit = commit
	}
	return info
})

func fromModule() Info {
	info := Info{Version: "devel", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		info.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// Get returns the running binary's build information.
func Get() Info { return read() }

// Short is the version as one token: the module version, or for a development
// build "devel+<12 hex of the commit>" (with "-dirty" for a modified checkout).
func (i Info) Short() string {
	if i.Version != "devel" || i.Commit == "" {
		return i.Version
	}
	s := i.Version + "+" + shorten(i.Commit)
	if i.Modified {
		s += "-dirty"
	}
	return s
}

func shorten(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// Collector exports certplane_build_info{version,commit,goversion} = 1, the
// Prometheus convention for joining a binary's identity onto other series.
func Collector() prometheus.Collector {
	i := Get()
	commit := i.Commit
	if i.Modified && commit != "" {
		commit += "-dirty"
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "certplane_build_info",
		Help:        "Build information of the running certplane binary; always 1.",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": commit, "goversion": i.GoVersion},
	}, func() float64 { return 1 })
}
