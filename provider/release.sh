#!/usr/bin/env bash
# Packages terraform-provider-aigov as a registry or mirror serves it: per platform
# `terraform-provider-aigov_VERSION_OS_ARCH.zip` (the binary named `terraform-provider-aigov_vVERSION`),
# `terraform-provider-aigov_VERSION_SHA256SUMS`, and `terraform-provider-aigov_VERSION_manifest.json`
# (protocol 6), the Terraform Registry's release layout; and under OUT_DIR/mirror/ the provider
# network mirror protocol's layout (index.json, VERSION.json with each archive's zh: hash) for
# registry.terraform.io/aigov/aigov and registry.opentofu.org/aigov/aigov, for any HTTPS server.
#
# Usage: provider/release.sh VERSION OUT_DIR BINARY:OS_ARCH...
#   e.g. provider/release.sh 0.1.0 dist target/release/terraform-provider-aigov:linux_amd64 \
#          target/aarch64-unknown-linux-gnu/release/terraform-provider-aigov:linux_arm64
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: release.sh VERSION OUT_DIR BINARY:OS_ARCH..." >&2; exit 2; }
version="$1" out="$2"; shift 2
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "VERSION must look like 0.1.0, not $version" >&2; exit 2; }
name="terraform-provider-aigov"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
platforms=()
for spec in "$@"; do
  binary="${spec%%:*}" platform="${spec#*:}"
  [[ -x "$binary" ]] || { echo "$binary is not an executable" >&2; exit 2; }
  [[ "$platform" =~ ^[a-z0-9]+_[a-z0-9]+$ ]] || { echo "give OS_ARCH (linux_amd64) after the binary: $spec" >&2; exit 2; }
  zip="${name}_${version}_${platform}.zip"
  python3 - "$binary" "${name}_v${version}" "$out/$zip" <<'PY'
import sys, zipfile
binary, inner, target = sys.argv[1:]
info = zipfile.ZipInfo(inner, date_time=(2026, 1, 1, 0, 0, 0))
info.external_attr = 0o755 << 16
info.compress_type = zipfile.ZIP_DEFLATED
with zipfile.ZipFile(target, "w") as z, open(binary, "rb") as f:
    z.writestr(info, f.read())
PY
  platforms+=("$platform")
done
printf '{"version":1,"metadata":{"protocol_versions":["6.0"]}}\n' >"$out/${name}_${version}_manifest.json"
(cd "$out" && sha256sum "${name}_${version}"_*.zip "${name}_${version}_manifest.json" >"${name}_${version}_SHA256SUMS")
for host in registry.terraform.io registry.opentofu.org; do
  dir="$out/mirror/$host/aigov/aigov"
  mkdir -p "$dir"
  archives=""
  for platform in "${platforms[@]}"; do
    zip="${name}_${version}_${platform}.zip"
    cp "$out/$zip" "$dir/"
    sha="$(sha256sum "$out/$zip" | cut -d' ' -f1)"
    archives+="${archives:+,}\"$platform\":{\"url\":\"$zip\",\"hashes\":[\"zh:$sha\"]}"
  done
  printf '{"archives":{%s}}\n' "$archives" >"$dir/$version.json"
  printf '{"versions":{"%s":{}}}\n' "$version" >"$dir/index.json"
done
echo "$out"
