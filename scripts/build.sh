#!/usr/bin/env bash
# Configures (once) and builds into ./build: every target, or only those named
# (e.g. daemon/egressd client/egress-connect). Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  echo "build: configuring ./build (meson setup)" >&2
  meson setup build >build-setup.log 2>&1 || { cat build-setup.log >&2; exit 1; }
  rm -f build-setup.log
fi
echo "build: compiling ${*:-everything} (ninja -C build $*)" >&2
# ninja's "[n/m] ..." lines, one per step, show how far it has got.
ninja -C build "$@" >&2
