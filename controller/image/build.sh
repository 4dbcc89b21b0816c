#!/usr/bin/env bash
# Builds the aigov-controller or aigov-gateway image with buildah from a built binary.
# Usage: build.sh controller|gateway TAG [BINARY]
#   BINARY defaults to $CARGO_TARGET_DIR/release/aigov-ROLE (cargo build --release first).
# Storage: buildah's defaults, or BUILDAH_ARGS (e.g. "--storage-driver vfs --root DIR
# --runroot DIR", as the tests use) before the subcommand.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
role="${1:-}" tag="${2:-}"
[[ "$role" == controller || "$role" == gateway ]] && [[ -n "$tag" ]] \
  || { echo "usage: build.sh controller|gateway TAG [BINARY]" >&2; exit 2; }
binary="${3:-${CARGO_TARGET_DIR:-$here/../../target}/release/aigov-$role}"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
bash "$here/rootfs.sh" "$binary" "$context/rootfs"
# shellcheck disable=SC2086
buildah ${BUILDAH_ARGS:-} bud --quiet --isolation chroot -t "$tag" \
  -f "$here/Containerfile.$role" "$context" >/dev/null
echo "$tag"
