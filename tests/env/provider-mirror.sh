#!/usr/bin/env bash
# Offers a built terraform-provider-aigov from a filesystem mirror, the way a private mirror
# would serve it, and writes a CLI configuration that installs aigov/aigov from there (under
# both registry hostnames, for terraform and OpenTofu). Prints the configuration's path, for
# TF_CLI_CONFIG_FILE.
# Usage: bash tests/env/provider-mirror.sh BINARY DIR
set -euo pipefail
binary="$(realpath "$1")" dir="$(mkdir -p "$2" && realpath "$2")"
version="${AIGOV_PROVIDER_VERSION:-0.1.0}"
for host in registry.terraform.io registry.opentofu.org; do
  platform_dir="$dir/mirror/$host/aigov/aigov/$version/linux_amd64"
  mkdir -p "$platform_dir"
  ln -sfn "$binary" "$platform_dir/terraform-provider-aigov_v$version"
done
cat >"$dir/cli.tfrc" <<HCL
provider_installation {
  filesystem_mirror {
    path    = "$dir/mirror"
    include = ["registry.terraform.io/aigov/aigov", "registry.opentofu.org/aigov/aigov"]
  }
}
HCL
echo "$dir/cli.tfrc"
