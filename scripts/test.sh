#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit and
# integration; the integration tests need root for their network namespaces),
# in four passes:
#   1. the normal build (./build), egressd with its default thread count (one
#      event loop per CPU);
#   2. the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#      (./build-asan, g++), egressd with one event loop: the egressd and
#      egress-connect the integration tests spawn are sanitized too, and any
#      finding fails the run;
#   3. the same suite under ThreadSanitizer (./build-tsan, clang), egressd with
#      three event loops, more than this machine has cores, so that loops
#      interleave;
#   4. each libFuzzer target (./build-fuzz, clang) for FUZZ_SECONDS (default 60).
# A skipped test counts as a failure: every test must really run. Extra
# arguments go to both `meson test` runs.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1
fuzz_seconds=${FUZZ_SECONDS:-60}
fuzz_targets=(request reply config)

# A finding stops the process with a stack trace and a non-zero status; leaks count.
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:check_initialization_order=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

build() {  # DIR [TARGET...]: configures once (setup in $setup), then builds
  local dir=$1
  shift
  mkdir -p "$dir"
  [ -f "$dir/build.ninja" ] || eval "$setup" >"$dir/setup.log" 2>&1 ||
    { echo "test: configuring $dir failed:" >&2; cat "$dir/setup.log" >&2; return 1; }
  ninja -C "$dir" "$@" >"$dir/build.log" 2>&1 ||
    { echo "test: building $dir failed:" >&2; tail -50 "$dir/build.log" >&2; return 1; }
}

setup="meson setup build"
build build || exit 1
# The sanitized suite runs slower (pools_test's 70,000 connects most of all).
setup="meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false"
build build-asan || exit 1
setup="CC=clang CXX=clang++ meson setup build-tsan -Db_sanitize=thread -Db_lundef=false"
build build-tsan || exit 1
setup="CC=clang CXX=clang++ meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined"
build build-fuzz "${fuzz_targets[@]/#/tests/fuzz/fuzz-}" || exit 1

passed=0 failed=0 skipped=0 status=0

suite() {  # DIR TIMEOUT_MULTIPLIER THREADS [meson test args...]; THREADS "": egressd's default
  local dir=$1 mult=$2 threads=$3
  shift 3
  echo "== test suite: $dir${threads:+, egressd --threads $threads}"
  rm -f "$dir"/*.xml
  EGRESSD_TEST_THREADS=$threads meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier "$mult" "$@" 2>&1 |
    tee "$dir/test-output.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  # Count the individual test cases from GoogleTest's XML reports.
  local x t tests failures s
  for x in "$dir"/*.xml; do
    [ -f "$x" ] || continue
    t=$(grep -o '<testsuites tests="[0-9]*" failures="[0-9]*"' "$x" | head -1 | grep -o '[0-9]\+' | tr '\n' ' ')
    read -r tests failures <<<"$t"
    s=$(grep -c 'result="skipped"' "$x")
    passed=$((passed + tests - failures - s)); failed=$((failed + failures)); skipped=$((skipped + s))
  done
  s=$(grep -E '^Skipped: +[0-9]+' "$dir/test-output.txt" | grep -o '[0-9]\+' || echo 0)
  skipped=$((skipped + s))
}

suite build 1 "" "$@"
suite build-asan 3 1 "$@"
suite build-tsan 5 3 "$@"

# Each fuzzer starts from its seeds (tests/fuzz/corpus/) plus what earlier runs
# found (build-fuzz/fuzz/corpus-*/); an input that breaks an invariant, crashes
# or trips a sanitizer is saved as build-fuzz/fuzz/NAME-crash-* and fails the run.
echo "== fuzzers: ${fuzz_seconds} s each"
mkdir -p build-fuzz/fuzz
for t in "${fuzz_targets[@]}"; do
  mkdir -p "build-fuzz/fuzz/corpus-$t"
  extra=()
  case $t in
    request) extra=(-max_len=4200) ;;  # past EGRESS_MAX_DATAGRAM, to reach EMSGSIZE
    reply) extra=(-max_len=8192) ;;
    config) extra=(-dict=tests/fuzz/config.dict) ;;
  esac
  log=build-fuzz/fuzz/$t.log
  build-fuzz/tests/fuzz/fuzz-$t -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="build-fuzz/fuzz/$t-" "${extra[@]}" "build-fuzz/fuzz/corpus-$t" "tests/fuzz/corpus/$t" \
    >"$log" 2>&1
  rc=$?
  done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -1)
  if [ "$rc" -eq 0 ] && [ -n "$done_line" ]; then
    echo "fuzz-$t: OK, ${done_line#Done }, $(grep -o 'cov: [0-9]*' "$log" | tail -1)"
    passed=$((passed + 1))
  else
    echo "fuzz-$t: FAILED (exit $rc); the input is in build-fuzz/fuzz/$t-*; log $log:" >&2
    grep -v -E '^#[0-9]+' "$log" | tail -60 >&2
    failed=$((failed + 1)); status=1
  fi
done

echo "${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$skipped" -ne 0 ]; then
  echo "test: ${skipped} test(s) skipped; every test must run (integration tests need root)" >&2
  exit 1
fi
[ "$passed" -gt 0 ] || { echo "test: no test ran" >&2; exit 1; }
[ "$failed" -eq 0 ] || status=1
exit "$status"
