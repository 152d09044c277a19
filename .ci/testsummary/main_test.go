package main

import (
	"os"
	"strings"
	"testing"
)

// testdata/go-test.json is `go test -json ./...` on a module with a passing
// package (a skip and subtests), a failed subtest, a panic outside any test,
// a build failure and a package without tests.
func readFixture(t *testing.T, out *strings.Builder) *summary {
	t.Helper()
	f, err := os.Open("testdata/go-test.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := newSummary()
	if err := s.read(f, out); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSummary(t *testing.T) {
	s := readFixture(t, &strings.Builder{})
	var b strings.Builder
	n := s.print(&b, []string{"fuzz"})
	want := `FAIL	fix/bad	0.010s
FAIL	fix/boom	0.013s
FAIL	fix/broken [build failed]
?   	fix/empty	[no test files]
ok  	fix/good	0.006s
--- FAIL: TestSub/wrong (fix/bad)
--- FAIL: TestSub (fix/bad)
--- FAIL: TestPanics (fix/boom; did not finish)
FAIL: fuzz
(1 skipped)
7 passed, 5 failed
`
	if b.String() != want || n != 5 {
		t.Errorf("summary (%d failures):\n%s\nwant (5 failures):\n%s", n, b.String(), want)
	}
}

// TestStream: a failed test's output, a build failure's compiler output and
// a panic are shown; a passing test's log is not.
func TestStream(t *testing.T) {
	var out strings.Builder
	readFixture(t, &out)
	got := out.String()
	for _, want := range []string{
		"broken/broken_test.go:5:28: undefined: undefinedThing\n",
		"    bad_test.go:8: want 1, got 2\n--- FAIL: TestSub/wrong",
		"panic: outside a test\n",
		"FAIL\tfix/bad\t0.010s\n",
		"ok  \tfix/good\t0.006s\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("stream lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "quiet") || strings.Contains(got, "=== RUN   TestPass") {
		t.Errorf("stream shows a passing test's output:\n%s", got)
	}
}

func TestAllPassed(t *testing.T) {
	s := newSummary()
	in := `{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}
{"Action":"pass","Package":"p"}
`
	if err := s.read(strings.NewReader(in), &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if n := s.print(&b, nil); n != 0 || b.String() != "ok  \tp\t0.1s\n1 passed, 0 failed\n" {
		t.Errorf("%d failures:\n%s", n, b.String())
	}
}
