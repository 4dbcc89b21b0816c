#!/usr/bin/env bash
# Packages kubectl-aigov for krew: one release archive per platform (the binary and its
# license) and the plugin manifest naming each with its SHA-256, as a krew index or
# `kubectl krew install --manifest=aigov.yaml --archive=...` takes them.
#
# Usage: release.sh VERSION OUT_DIR BINARY:OS/ARCH...
#   e.g. release.sh v0.1.0 dist target/release/kubectl-aigov:linux/amd64 \
#          target/aarch64-unknown-linux-gnu/release/kubectl-aigov:linux/arm64
# Writes OUT_DIR/kubectl-aigov_VERSION_OS_ARCH.tar.gz and OUT_DIR/aigov.yaml.
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: release.sh VERSION OUT_DIR BINARY:OS/ARCH..." >&2; exit 2; }
version="$1" out="$2"; shift 2
[[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "VERSION must look like v0.1.0, not $version" >&2; exit 2; }
repo_url="https://github.com/aigov/aigov"
mkdir -p "$out"
platforms=""
for spec in "$@"; do
  binary="${spec%%:*}" platform="${spec#*:}"
  os="${platform%/*}" arch="${platform#*/}"
  [[ -x "$binary" ]] || { echo "$binary is not an executable" >&2; exit 2; }
  [[ "$platform" == */* && -n "$os" && -n "$arch" ]] || { echo "give OS/ARCH after the binary: $spec" >&2; exit 2; }
  name="kubectl-aigov_${version}_${os}_${arch}.tar.gz"
  stage="$(mktemp -d)"
  cp "$binary" "$stage/kubectl-aigov"
  cat >"$stage/LICENSE" <<'LICENSE'
kubectl-aigov is part of aigov, licensed under the Apache License, Version 2.0.
You may obtain a copy of the License at https://www.apache.org/licenses/LICENSE-2.0
Unless required by applicable law or agreed to in writing, software distributed under the
License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND.
LICENSE
  # Reproducible: fixed owner, mode and time, sorted entries.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2026-01-01 00:00Z' \
    -C "$stage" -czf "$out/$name" kubectl-aigov LICENSE
  rm -rf "$stage"
  sha="$(sha256sum "$out/$name" | cut -d' ' -f1)"
  platforms+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $repo_url/releases/download/$version/$name
    sha256: $sha
    files:
      - from: kubectl-aigov
        to: .
      - from: LICENSE
        to: .
    bin: kubectl-aigov
"
done
cat >"$out/aigov.yaml" <<MANIFEST
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: aigov
spec:
  version: $version
  homepage: $repo_url
  shortDescription: Who spent what on Bedrock, by AIBudget
  description: |
    Reports on aigov's AIBudgets and the Bedrock usage records the aigov controller
    writes to CloudWatch Logs: spend against each budget's limit with its forecast
    (report), live spend rate by workload (top), two periods side by side (compare),
    and the per-call records as CSV or JSON (export).
  caveats: |
    report reads AIBudgets (list on aibudgets.aigov.dev); top, compare and export read
    the controller's --emf-log-group with the AWS credential chain (logs:FilterLogEvents).
  platforms:
$platforms
MANIFEST
echo "$out/aigov.yaml"
