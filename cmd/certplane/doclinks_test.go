package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// mdLink matches an inline markdown link or image target: [text](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocLinks checks that every relative link in README.md and docs/*.md
// names a file or directory of the repository and, for a markdown file, a
// heading that exists: the reference was split into docs/, and a moved
// section must not leave a dead link behind.
func TestDocLinks(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md", "../../testenv/README.md", "../../bench/RESULTS.md")
	checked := 0
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("%v", err)
		}
		for i, line := range proseLines(string(text)) {
			for _, m := range mdLink.FindAllStringSubmatch(stripCodeSpans(line), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				path, anchor, _ := strings.Cut(target, "#")
				resolved := f
				if path != "" {
					resolved = filepath.Join(filepath.Dir(f), path)
					if _, err := os.Stat(resolved); err != nil {
						t.Errorf("%s:%d: link %q: %v", f, i+1, target, err)
						continue
					}
				}
				if anchor == "" || !strings.HasSuffix(resolved, ".md") {
					continue
				}
				doc, err := os.ReadFile(resolved)
				if err != nil {
					t.Errorf("%s:%d: link %q: %v", f, i+1, target, err)
					continue
				}
				if !headingAnchors(string(doc))[anchor] {
					t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", f, i+1, target, resolved, anchor)
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d relative links found: the parser is broken", checked)
	}
}

// proseLines returns the file's lines with those inside fenced code blocks
// blanked, keeping line numbers.
func proseLines(text string) []string {
	lines := strings.Split(text, "\n")
	inFence := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
			lines[i] = ""
			continue
		}
		if inFence {
			lines[i] = ""
		}
	}
	return lines
}

var codeSpan = regexp.MustCompile("`[^`]*`")

// stripCodeSpans removes inline code, which may hold text that looks like a
// link, but keeps link text written as code: [`Dockerfile`](../Dockerfile).
func stripCodeSpans(line string) string {
	return codeSpan.ReplaceAllString(line, "x")
}

// headingAnchors returns the anchors GitHub gives the file's headings:
// lower case, punctuation other than '-' and '_' dropped, spaces as '-', and
// "-1", "-2"... for repeats.
func headingAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	for _, l := range proseLines(text) {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(l, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		for n, base := 1, a; anchors[a]; n++ {
			a = base + "-" + strconv.Itoa(n)
		}
		anchors[a] = true
	}
	return anchors
}
