package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestNoRepeatedKeys(t *testing.T) {
	for _, format := range Formats {
		var buf bytes.Buffer
		log, err := New(&buf, format, slog.LevelInfo)
		if err != nil {
			t.Fatal(err)
		}
		log = log.With("component", "proxy", "listener", "a").With("component", "xds-client")
		log.Info("one", "n", 1)
		log.Info("two", "listener", "b")
		log.WithGroup("g").Info("three", "component", "inner")
		log.Debug("hidden")
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("%s: %d lines, want 3:\n%s", format, len(lines), buf.String())
		}
		for i, want := range []map[string]string{
			{"component": "xds-client", "listener": "a"},
			{"component": "xds-client", "listener": "b"},
			{"component": "xds-client", "listener": "a"},
		} {
			l := lines[i]
			for k, v := range want {
				top := strings.Replace(l, `"g":{"component":"inner"}`, "", 1)
				if n := strings.Count(top, `"`+k+`":`) + strings.Count(top, " "+k+"="); n != 1 {
					t.Errorf("%s line %d has key %s %d times: %s", format, i, k, n, l)
				}
				if !strings.Contains(l, `"`+k+`":"`+v+`"`) && !strings.Contains(l, " "+k+"="+v) {
					t.Errorf("%s line %d: want %s=%s: %s", format, i, k, v, l)
				}
			}
			if format == "json" {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Errorf("line %d is not JSON: %v: %s", i, err, l)
				}
			}
		}
		if !strings.Contains(lines[2], "g.component=inner") && !strings.Contains(lines[2], `"g":{"component":"inner"}`) {
			t.Errorf("%s: grouped key lost: %s", format, lines[2])
		}
	}
}

func TestParse(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "xml", slog.LevelInfo); err == nil {
		t.Error("format xml accepted")
	}
	if l, err := ParseLevel("warn"); err != nil || l != slog.LevelWarn {
		t.Errorf("ParseLevel(warn) = %v, %v", l, err)
	}
	if _, err := ParseLevel("loud"); err == nil {
		t.Error("level loud accepted")
	}
}
