// Command testsummary reads `go test -json` and prints what a person needs
// from it, in place of go test's verbose stream.
//
//	go test -json ./... 2>&1 | testsummary -stream   # while the tests run
//	testsummary [-go-test-failed] [-failed-stage NAME]... < test.json  # at the end
//
// With -stream it prints the output of each failed test when it fails, a
// build failure's compiler output, a failed package's own output (a panic,
// a timeout) and the result line of every package (ok, FAIL, no test
// files) when it ends; lines that are not JSON (go's own messages) pass
// through. Without -stream it prints the summary: the result line of every
// package, the failed tests, and one total line last, "N passed, N failed".
//
// The total counts tests, subtests included. A package that failed with no
// failed test (build error, panic outside a test, timeout) counts as one
// failure, and so does each -failed-stage, and so does -go-test-failed (go
// test's exit status) when the stream names no failure (go could not load
// the packages), so "0 failed" means that nothing failed. The exit status
// is 1 when anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output and build-fail events
}

// stages is a repeatable flag.
type stages []string

func (s *stages) String() string     { return strings.Join(*s, ",") }
func (s *stages) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	stream := flag.Bool("stream", false, "print failures and package results as they happen, not the summary")
	var failedStages stages
	flag.Var(&failedStages, "failed-stage", "a stage of the run that failed outside go test (repeatable); each counts as one failure")
	goTestFailed := flag.Bool("go-test-failed", false, "go test exited non-zero: one failure unless the stream names one")
	flag.Parse()
	s := newSummary()
	var out io.Writer = io.Discard
	if *stream {
		out = os.Stdout
	}
	if err := s.read(os.Stdin, out); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if *stream {
		return
	}
	if *goTestFailed && len(s.failed) == 0 && s.pkgFailures == 0 {
		failedStages = append([]string{"go test exited non-zero without naming a failed test or package"}, failedStages...)
	}
	if s.print(os.Stdout, failedStages) > 0 {
		os.Exit(1)
	}
}

// summary accumulates the events of one go test run.
type summary struct {
	running     map[string][]string // package + "\x00" + test -> its output so far
	pkgOutput   map[string][]string // a package's own output (not a test's)
	pkgFailed   map[string]bool     // packages with at least one failed test
	results     map[string]string   // package -> its result line
	failed      []string            // "--- FAIL: TestX (package)"
	passed      int
	skipped     int
	pkgFailures int // failed packages without a failed test
}

func newSummary() *summary {
	return &summary{running: map[string][]string{}, pkgOutput: map[string][]string{}, pkgFailed: map[string]bool{}, results: map[string]string{}}
}

// read consumes the stream, writing to out what -stream shows.
func (s *summary) read(r io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(out, "%s\n", line)
			continue
		}
		s.add(e, out)
	}
	return sc.Err()
}

func (s *summary) add(e event, out io.Writer) {
	switch {
	case e.Action == "build-output":
		fmt.Fprint(out, e.Output)
	case e.Test != "":
		s.addTest(e, out)
	case e.Action == "output":
		s.pkgOutput[e.Package] = append(s.pkgOutput[e.Package], e.Output)
	case e.Action == "pass" || e.Action == "fail" || e.Action == "skip":
		s.endPackage(e, out)
	}
}

func (s *summary) addTest(e event, out io.Writer) {
	key := e.Package + "\x00" + e.Test
	switch e.Action {
	case "output":
		s.running[key] = append(s.running[key], e.Output)
	case "pass":
		s.passed++
		delete(s.running, key)
	case "skip":
		s.skipped++
		delete(s.running, key)
	case "fail":
		fmt.Fprint(out, strings.Join(s.running[key], ""))
		delete(s.running, key)
		s.failed = append(s.failed, fmt.Sprintf("--- FAIL: %s (%s)", e.Test, e.Package))
		s.pkgFailed[e.Package] = true
	}
}

// endPackage records a package's result line; a failed package's own
// output (a panic, a timeout, a build failure) is shown with it.
func (s *summary) endPackage(e event, out io.Writer) {
	lines := s.pkgOutput[e.Package]
	delete(s.pkgOutput, e.Package)
	if e.Action == "fail" {
		s.unfinished(e.Package, out)
		fmt.Fprint(out, strings.Join(lines, ""))
		if !s.pkgFailed[e.Package] {
			s.pkgFailures++
		}
	}
	result := resultLine(e, lines)
	if e.Action != "fail" {
		fmt.Fprintln(out, result)
	}
	s.results[e.Package] = result
}

// unfinished reports the tests of a failed package that never ended (the
// binary panicked or timed out while they ran) as failed, with their output.
func (s *summary) unfinished(pkg string, out io.Writer) {
	var keys []string
	for k := range s.running {
		if strings.HasPrefix(k, pkg+"\x00") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprint(out, strings.Join(s.running[k], ""))
		delete(s.running, k)
		s.failed = append(s.failed, fmt.Sprintf("--- FAIL: %s (%s; did not finish)", strings.TrimPrefix(k, pkg+"\x00"), pkg))
		s.pkgFailed[pkg] = true
	}
}

// resultLine is the package's line as go test prints it without -json.
func resultLine(e event, lines []string) string {
	for _, l := range lines {
		l = strings.TrimRight(l, "\n")
		if strings.HasPrefix(l, "ok  \t") || strings.HasPrefix(l, "?   \t") || strings.HasPrefix(l, "FAIL\t") {
			return l
		}
	}
	return map[string]string{"pass": "ok  ", "fail": "FAIL", "skip": "?   "}[e.Action] + "\t" + e.Package
}

// print writes the summary and returns the number of failures.
func (s *summary) print(w io.Writer, failedStages []string) int {
	pkgs := make([]string, 0, len(s.results))
	for p := range s.results {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs) // go test's order
	for _, p := range pkgs {
		fmt.Fprintln(w, s.results[p])
	}
	for _, f := range s.failed {
		fmt.Fprintln(w, f)
	}
	for _, st := range failedStages {
		fmt.Fprintf(w, "FAIL: %s\n", st)
	}
	if s.skipped > 0 {
		fmt.Fprintf(w, "(%d skipped)\n", s.skipped)
	}
	failed := len(s.failed) + s.pkgFailures + len(failedStages)
	fmt.Fprintf(w, "%d passed, %d failed\n", s.passed, failed)
	return failed
}
