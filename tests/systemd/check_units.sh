#!/bin/sh
# Installs the build into a temporary destdir and checks what an operator
# gets: `systemd-analyze verify` is clean on the installed units, their
# exposure (`systemd-analyze security --offline=yes`) is at most MAX, and the
# configuration egressd.service reads exists, passes egressd's own check and
# survives a reinstall.
# usage: check_units.sh BUILD_DIR PREFIX SYSCONFDIR MAX_EXPOSURE
set -eu
build=$1 prefix=$2 sysconfdir=$3 max=$4
dest=$(mktemp -d /tmp/egressd-units.XXXXXX)
trap 'rm -rf "$dest"' EXIT
fail() { echo "check_units: $*" >&2; exit 1; }

meson install -C "$build" --no-rebuild --destdir "$dest" --quiet >"$dest.log" 2>&1 ||
  { cat "$dest.log" >&2; rm -f "$dest.log"; fail "meson install failed"; }
rm -f "$dest.log"
units=$dest$prefix/lib/systemd/system
[ -f "$units/egressd.service" ] && [ -f "$units/egressd.socket" ] || fail "units not installed in $units"

# The units name installed paths; systemd-analyze looks for them on this
# host, so the copies it checks point into the destdir instead.
work=$dest/verify
mkdir -p "$work"
for u in egressd.service egressd.socket; do
  sed "s|\([= ]\)$prefix/|\1$dest$prefix/|g" "$units/$u" >"$work/$u"
done
grep -q "^ExecStart=$dest$prefix/" "$work/egressd.service" || fail "ExecStart does not follow the prefix $prefix"
[ -x "$dest$prefix/sbin/egressd" ] || fail "ExecStart's $prefix/sbin/egressd is not installed"

# Documentation=man:... is checked with man(1): find the installed pages.
out=$(cd "$work" && MANPATH="$dest$prefix/share/man" systemd-analyze verify egressd.socket egressd.service 2>&1) ||
  fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify is not clean:
$out"
echo "systemd-analyze verify: clean"

report=$(systemd-analyze security --offline=yes "$work/egressd.service" 2>&1) || true
score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for egressd.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "no exposure level in: $report"
echo "systemd-analyze security --offline=yes: $score (at most $max)"
printf '%s\n' "$report" | grep '^✗' || true
awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }' || fail "exposure $score is above $max"

# The configuration the unit reads: installed, valid, and kept on reinstall.
conf=$dest$sysconfdir/egressd/egressd.json
grep -q -- "--config $sysconfdir/egressd/egressd.json" "$units/egressd.service" ||
  fail "ExecStart does not read $sysconfdir/egressd/egressd.json"
[ -f "$conf" ] || fail "$sysconfdir/egressd/egressd.json is not installed"
"$dest$prefix/sbin/egressd" --check-config "$conf" >/dev/null || fail "the installed configuration is not valid"
echo '{"log_level": "debug"}' >"$conf"
meson install -C "$build" --no-rebuild --destdir "$dest" --quiet >/dev/null 2>&1 || fail "reinstall failed"
grep -q debug "$conf" || fail "a reinstall overwrote the operator's $sysconfdir/egressd/egressd.json"
echo "default configuration: installed, valid, kept on reinstall"
