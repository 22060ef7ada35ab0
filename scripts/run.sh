#!/usr/bin/env bash
# Installs what is missing, builds, and runs egressd in the foreground on its
# built-in defaults (extra arguments go to egressd). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh >/dev/null
sock=/run/egressd/egressd.sock
[ -n "${RUNTIME_DIRECTORY:-}" ] && sock="${RUNTIME_DIRECTORY%%:*}/egressd.sock"
cat <<MSG
egressd is starting in the foreground; its socket: $sock
Try it from another terminal:
  $(pwd)/build/client/egress-connect --socket $sock --status
  $(pwd)/build/client/egress-connect --socket $sock --json HOST:PORT
Loopback (127.0.0.1:22 included), this host's own addresses, private ranges, link-local and
cloud metadata, multicast and broadcast destinations are denied (EACCES) unless a client rule
allows them: see SECURITY.md.
MSG
exec build/daemon/egressd "$@"
