package xds

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/envoyproxy/go-control-plane/pkg/log"
)

// controlPlaneLogger adapts slog to go-control-plane's printf-style logger.
// Its debug output (one line per watch and response) goes to slog's debug
// level, so it costs nothing unless asked for.
func controlPlaneLogger(l *slog.Logger) log.Logger {
	at := func(level slog.Level) func(string, ...any) {
		return func(format string, args ...any) {
			if l.Enabled(context.Background(), level) {
				l.Log(context.Background(), level, fmt.Sprintf(format, args...))
			}
		}
	}
	return log.LoggerFuncs{
		DebugFunc: at(slog.LevelDebug),
		InfoFunc:  at(slog.LevelDebug), // per-stream chatter, not operator news
		WarnFunc:  at(slog.LevelWarn),
		ErrorFunc: at(slog.LevelError),
	}
}
