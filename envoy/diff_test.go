package envoy

import (
	"fmt"
	"strings"
)

// lineDiff shows the first differing lines of two texts, with context: enough
// to see what changed in a golden without an external diff tool.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	from := max(0, i-3)
	for j := from; j < i; j++ {
		fmt.Fprintf(&b, "  %s\n", w[j])
	}
	for j := i; j < min(len(w), i+8); j++ {
		fmt.Fprintf(&b, "- %s\n", w[j])
	}
	for j := i; j < min(len(g), i+8); j++ {
		fmt.Fprintf(&b, "+ %s\n", g[j])
	}
	return fmt.Sprintf("first difference at line %d:\n%s", i+1, b.String())
}
