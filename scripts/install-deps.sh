#!/usr/bin/env bash
# Installs the Debian 12 packages egressd needs to build, run and test,
# skipping those already present. Needs root (uses sudo when not root).
set -euo pipefail

packages=(
  meson ninja-build gcc g++ pkg-config
  libboost-dev nlohmann-json3-dev prometheus-cpp-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev libsystemd-dev
  iproute2 util-linux prometheus
  valgrind gnuplot-nox microsocks dante-server
  clang libclang-rt-14-dev llvm
)
# microsocks and dante-server: the SOCKS proxies egress-bench vs-socks runs.
# dante-server's postinst starts no daemon without systemd: invoke-rc.d finds
# no runlevel (or policy-rc.d denies), and the init script would refuse the
# stock /etc/danted.conf, which names no internal/external address.

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
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
