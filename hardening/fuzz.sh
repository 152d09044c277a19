#!/usr/bin/env bash
# Runs every go-fuzz target of the module for a bounded time each.
#
#   hardening/fuzz.sh              # CI: 5s per target
#   FUZZTIME=3m hardening/fuzz.sh  # a longer local session
#   hardening/fuzz.sh FuzzXFCC     # only the targets named
#
# Targets are found, not listed: every `func FuzzXxx(f *testing.F)` in a
# _test.go file of the module runs, so a new target is fuzzed without
# editing this script. Seed corpora live in <package>/testdata/fuzz/<target>;
# a crash is written there too (go test -fuzz does), and the script exits 1.
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-5s}"
only=" $* "

mapfile -t targets < <(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . |
	sed -E 's#^\./(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+).*#\1 \2#' | sort -u)
if [ "${#targets[@]}" -eq 0 ]; then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi

failed=0
ran=0
start=$(date +%s)
for t in "${targets[@]}"; do
	pkg="./${t% *}"
	name="${t#* }"
	if [ "$only" != "  " ] && [[ "$only" != *" $name "* ]]; then
		continue
	fi
	echo "=== $pkg $name ($fuzztime)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s "$pkg"; then
		echo "--- FAIL: $pkg $name: the failing input is in $pkg/testdata/fuzz/$name/" >&2
		failed=1
	fi
	ran=$((ran + 1))
done
echo "fuzz.sh: $ran targets, ${fuzztime} each, $(( $(date +%s) - start ))s in all"
exit "$failed"
