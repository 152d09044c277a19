// Package logging builds the operational logger of every certplane command:
// JSON lines by default or logfmt text, a level, and no repeated keys. A
// key set again by a narrower With (component=proxy, then
// component=xds-client) replaces the wider one instead of appearing twice,
// which breaks JSON consumers that keep the first or reject duplicates.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// Formats are the values --log-format accepts; the first is the default.
var Formats = []string{"json", "text"}

// Levels are the values --log-level accepts.
var Levels = []string{"debug", "info", "warn", "error"}

// ParseLevel reads a --log-level value.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if !slices.Contains(Levels, strings.ToLower(s)) {
		return l, fmt.Errorf("want one of %s", strings.Join(Levels, ", "))
	}
	return l, l.UnmarshalText([]byte(s))
}

// New returns a logger writing format ("json" or "text") to w at level.
func New(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch format {
	case "json", "":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want %s", format, strings.Join(Formats, " or "))
	}
	return slog.New(&dedup{base: h, inner: h}), nil
}

// dedup keeps one value per key among the attributes added with With (the
// last wins, in the place of the first) and the record's own.
type dedup struct {
	base  slog.Handler // without the attributes below
	attrs []slog.Attr
	inner slog.Handler // base.WithAttrs(attrs)
}

func (h *dedup) Enabled(ctx context.Context, l slog.Level) bool { return h.base.Enabled(ctx, l) }

func (h *dedup) WithAttrs(as []slog.Attr) slog.Handler {
	merged := merge(slices.Clone(h.attrs), as)
	return &dedup{base: h.base, attrs: merged, inner: h.base.WithAttrs(merged)}
}

// WithGroup nests what follows under name: keys inside a group cannot
// clash with those outside, so the group's handler is used as it is.
func (h *dedup) WithGroup(name string) slog.Handler { return h.inner.WithGroup(name) }

func (h *dedup) Handle(ctx context.Context, r slog.Record) error {
	clash := false
	r.Attrs(func(a slog.Attr) bool {
		clash = slices.ContainsFunc(h.attrs, func(b slog.Attr) bool { return b.Key == a.Key })
		return !clash
	})
	if !clash {
		return h.inner.Handle(ctx, r)
	}
	all := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		all = merge(all, []slog.Attr{a})
		return true
	})
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(all...)
	return h.base.Handle(ctx, out)
}

// merge sets each of as in attrs: a key already there takes the new value
// in its old place.
func merge(attrs, as []slog.Attr) []slog.Attr {
	for _, a := range as {
		if i := slices.IndexFunc(attrs, func(b slog.Attr) bool { return b.Key == a.Key }); i >= 0 {
			attrs[i] = a
		} else {
			attrs = append(attrs, a)
		}
	}
	return attrs
}
