#!/usr/bin/env bash
# Builds a release tarball for machines without internet access:
# dist/linggong-<version>-<target>.tar.gz with the server binary (web console
# embedded), the example configuration, the systemd unit, README and
# ARCHITECTURE. Usage: scripts/dist.sh [output-dir]
# (PROFILE=dev packs a debug build, to check the packaging quickly.)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
version="$(cargo metadata --format-version 1 --no-deps --locked \
  | sed -n 's/.*"name":"linggong-server","version":"\([^"]*\)".*/\1/p')"
target="$(rustc -vV | sed -n 's/^host: //p')"
name="linggong-${version:-unknown}-${target}"
profile="${PROFILE:-release}"
case "$profile" in dev) dir=debug ;; *) dir="$profile" ;; esac
cargo build --profile "$profile" --locked -p linggong-server
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name"
install -m 0755 "target/$dir/linggong-server" "$stage/$name/"
install -m 0644 deploy/linggong.toml deploy/linggong-server.service README.md ARCHITECTURE.md "$stage/$name/"
mkdir -p "$out"
tar -C "$stage" -czf "$out/$name.tar.gz" "$name"
echo "$out/$name.tar.gz"
