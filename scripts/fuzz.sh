#!/usr/bin/env bash
# make fuzz: each target for FUZZTIME; a summary line per target (execs,
# the corpus it grew to, new inputs found). FUZZ_SAVE=1 copies each
# target's corpus from Go's fuzz cache into the package's testdata/fuzz,
# where go test runs it as seeds.
#
# A target fails when the fuzzer wrote a failing input (testdata/fuzz
# gains a file) or printed a panic. A bare "context deadline exceeded" at
# the end of FUZZTIME with no input written is Go's own race between the
# fuzztime deadline and its workers (go.dev/issue/75804, fixed in Go 1.27)
# and is reported, not failed.
#
# FUZZ_PARALLEL sets the fuzzer's worker count (go test -parallel; the
# default is GOMAXPROCS), so that targets can share a machine's CPUs.
# -timeout 0: go test's default 10-minute limit would end a longer run.
set -uo pipefail
FUZZTIME=${FUZZTIME:-15m}
parallel=()
[ -n "${FUZZ_PARALLEL:-}" ] && parallel=(-parallel "$FUZZ_PARALLEL")
cache=$(go env GOCACHE)/fuzz/$(go list -m)
failed=0
summary=()
for t in "$@"; do
	pkg=${t%%:*} name=${t#*:}
	dir=$pkg/testdata/fuzz/$name
	before=$(ls "$dir" 2>/dev/null | wc -l)
	echo "fuzz: $name in ./$pkg for $FUZZTIME"
	out=$(go test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -timeout 0 "${parallel[@]}" "./$pkg" 2>&1 | tee /dev/stderr)
	rc=$?
	after=$(ls "$dir" 2>/dev/null | wc -l)
	last=$(grep -E '^fuzz: elapsed' <<<"$out" | tail -n 1)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	total=$(sed -nE 's/.*total: ([0-9]+)\).*/\1/p' <<<"$last")
	base=$(sed -nE 's/.*gathering baseline coverage: [0-9]+\/([0-9]+) completed.*/\1/p' <<<"$out" | tail -n 1)
	verdict=ok
	if [ "$rc" -ne 0 ]; then
		if [ "$after" -gt "$before" ] || grep -qE '^panic:|Failing input written' <<<"$out"; then
			verdict=FAILED failed=1
		elif grep -q 'context deadline exceeded' <<<"$out"; then
			verdict="ok (Go's fuzztime race, go.dev/issue/75804; no input written)"
		else
			verdict=FAILED failed=1
		fi
	fi
	if [ "${FUZZ_SAVE:-0}" = 1 ] && [ -d "$cache/$pkg/$name" ]; then
		mkdir -p "$dir"
		cp "$cache/$pkg/$name"/* "$dir"/
	fi
	summary+=("$(printf '%-20s %-16s execs %-11s corpus %5s -> %-5s %s' "$name" "./$pkg" "${execs:-?}" "${base:-?}" "${total:-?}" "$verdict")")
done
printf 'fuzz summary (%s each):\n' "$FUZZTIME"
printf '  %s\n' "${summary[@]}"
exit $failed
