#!/usr/bin/env bash
# Installs what is missing, builds, and runs egressd in the foreground on its
# built-in defaults (extra arguments go to egressd). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Only what this runs: the daemon and the client to try it with (a minute or
# two on 2 cores; the whole tree with tests and benchmarks takes several).
scripts/build.sh daemon/egressd client/egress-connect client/egress-run client/libegress-preload.so
sock=/run/egressd/egressd.sock
[ -n "${RUNTIME_DIRECTORY:-}" ] && sock="${RUNTIME_DIRECTORY%%:*}/egressd.sock"
cat <<MSG
egressd is starting in the foreground; its socket: $sock
Try it from another terminal:
  $(pwd)/build/client/egress-connect --socket $sock --status
  $(pwd)/build/client/egress-connect --socket $sock --json HOST:PORT
  $(pwd)/build/client/egress-run --socket $sock -- curl http://HOST/   # any program's connects
Loopback (127.0.0.1:22 included), this host's own addresses, private ranges, link-local and
cloud metadata, multicast and broadcast destinations are denied (EACCES) unless a client rule
allows them: see SECURITY.md.
MSG
exec build/daemon/egressd "$@"
