#!/usr/bin/env bash
# Installs the Debian 12 packages egressd needs to build, run and test,
# skipping those already present. Needs root (uses sudo when not root).
set -euo pipefail

packages=(
  meson ninja-build gcc g++ pkg-config
  libboost-dev nlohmann-json3-dev prometheus-cpp-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev libsystemd-dev libc-ares-dev
  iproute2 util-linux prometheus
  valgrind gnuplot-nox microsocks dante-server
  clang libclang-rt-14-dev llvm
  nginx-light haproxy wrk curl python3
  scdoc man-db groff-base
)
# libc-ares-dev: host-name lookups (c-ares 1.18), driven by egressd's own event
# loops so that a lookup never blocks one.
# scdoc builds the man pages; man-db and groff-base render them for the
# man-pages test, which fails on any warning.
# microsocks and dante-server: the SOCKS proxies egress-bench vs-socks runs.
# dante-server's postinst starts no daemon without systemd: invoke-rc.d finds
# no runlevel (or policy-rc.d denies), and the init script would refuse the
# stock /etc/danted.conf, which names no internal/external address.
# nginx-light, haproxy, wrk, curl and python3: the unmodified programs that
# tests/integration/dropin_test.cpp runs under egress-run. The tests start
# their own nginx and haproxy, with configs in a temp dir; the packaged
# services must not run (below).

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi

# nginx's and haproxy's postinst start their service (invoke-rc.d or
# deb-systemd-invoke) wherever an init system runs: a host nginx on port 80
# that no test wants, and that could answer in a test's place. Both ask
# /usr/sbin/policy-rc.d first, and exit status 101 means "action forbidden"
# (invoke-rc.d(8)), so one that exits 101 is in place for the install only.
# One that already exists is the administrator's: it is left alone and decides.
policy=/usr/sbin/policy-rc.d
own_policy=""
remove_policy() { [ -z "$own_policy" ] || $sudo rm -f "$policy"; }
trap remove_policy EXIT
trap 'exit 130' HUP INT TERM  # so that EXIT's trap runs on these too
if [ -e "$policy" ] || [ -L "$policy" ]; then
  echo "install-deps: $policy exists; it decides which services the install starts" >&2
else
  # noclobber: the redirection fails rather than overwrite a file made meanwhile.
  $sudo sh -c "set -C; printf '#!/bin/sh\\n# install-deps.sh: no service starts during its install\\nexit 101\\n' > $policy"
  own_policy=1
  $sudo chmod 755 "$policy"
fi

echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
