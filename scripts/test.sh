#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit and
# integration; the integration tests need root for their network namespaces).
# A skipped test counts as a failure: every test must really run.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1
scripts/build.sh >/dev/null || { echo "test: build failed" >&2; scripts/build.sh; exit 1; }
rm -f build/*.xml
meson test -C build --no-rebuild --print-errorlogs "$@" 2>&1 | tee build/test-output.txt
status=${PIPESTATUS[0]}

# Count the individual test cases from GoogleTest's XML reports.
passed=0 failed=0 skipped=0
for x in build/*.xml; do
  [ -f "$x" ] || continue
  t=$(grep -o '<testsuites tests="[0-9]*" failures="[0-9]*"' "$x" | head -1 | grep -o '[0-9]\+' | tr '\n' ' ')
  read -r tests failures <<<"$t"
  s=$(grep -c 'result="skipped"' "$x")
  passed=$((passed + tests - failures - s)); failed=$((failed + failures)); skipped=$((skipped + s))
done
meson_skips=$(grep -E '^Skipped: +[0-9]+' build/test-output.txt | grep -o '[0-9]\+' || echo 0)
skipped=$((skipped + meson_skips))
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$skipped" -ne 0 ]; then
  echo "test: ${skipped} test(s) skipped; every test must run (integration tests need root)" >&2
  exit 1
fi
[ "$passed" -gt 0 ] || { echo "test: no test ran" >&2; exit 1; }
exit "$status"
