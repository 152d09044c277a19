package main

import (
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
)

// logRuntime logs the Go runtime settings the proxy runs with. They are
// Go's defaults, kept deliberately (docs/performance.md, "Runtime settings"):
// GOMAXPROCS = the CPUs the process may use (cgroup CPU limits included),
// GOGC=100, no GOMEMLIMIT; the environment variables override them.
func logRuntime(log *slog.Logger) {
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		gogc = "100"
	}
	limit := "none"
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		limit = formatBytes(l)
	}
	log.Info("go runtime", "gomaxprocs", runtime.GOMAXPROCS(0), "cpus", runtime.NumCPU(), "gogc", gogc, "gomemlimit", limit)
}

func formatBytes(n int64) string {
	for _, u := range sizeUnits {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return slog.Int64Value(n>>u.shift).String() + u.suffix
		}
	}
	return slog.Int64Value(n).String() + "B"
}
