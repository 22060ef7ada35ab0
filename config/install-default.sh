#!/bin/sh
# Run by `meson install`: puts the default configuration at DIR/egressd.json
# (under $DESTDIR) unless a file is there already. An operator's
# configuration is never overwritten by a reinstall.
set -eu
src=$1
dir=${DESTDIR:-}$2
mkdir -p "$dir"
if [ -e "$dir/egressd.json" ] || [ -L "$dir/egressd.json" ]; then
  echo "Keeping the existing $dir/egressd.json"
else
  install -m 0644 "$src" "$dir/egressd.json"
  echo "Installing the default configuration to $dir/egressd.json"
fi
