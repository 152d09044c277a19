package main

import (
	"flag"
	"io"
	"log/slog"
	"strings"

	"github.com/certplane/certplane/internal/logging"
)

// logFlags are --log-format and --log-level, the same on every command
// that runs: one operational log format across certplane.
type logFlags struct {
	format, level string
}

func addLogFlags(fs *flag.FlagSet, defaultLevel string) *logFlags {
	f := &logFlags{}
	fs.StringVar(&f.format, "log-format", logging.Formats[0], "operational log format: "+strings.Join(logging.Formats, " (JSON lines) or ")+" (logfmt)")
	fs.StringVar(&f.level, "log-level", defaultLevel, "operational log level: "+strings.Join(logging.Levels, ", "))
	return f
}

// logger builds the operational logger on w, or a usage error naming the
// flag at fault.
func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	level, err := logging.ParseLevel(f.level)
	if err != nil {
		return nil, usageError("--log-level %q: %v", f.level, err)
	}
	log, err := logging.New(w, f.format, level)
	if err != nil {
		return nil, usageError("--log-format: %v", err)
	}
	return log, nil
}

// args renders the flags for a command started by another (demo -> proxy).
func (f *logFlags) args() []string {
	return []string{"--log-format", f.format, "--log-level", f.level}
}
