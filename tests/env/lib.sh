# Shared settings for the local environment scripts. Sourced, never run.
#
# Everything built is cached outside the clone under $AIGOV_CACHE, in directories
# keyed by the pinned version (and a recipe revision), so a fresh clone reuses them.
# Everything running keeps its PID, logs and credentials under $AIGOV_RUN.

AIGOV_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
AIGOV_CACHE="${AIGOV_CACHE:-$HOME/.cache/aigov}"
AIGOV_RUN="${AIGOV_RUN:-${TMPDIR:-/tmp}/aigov-env}"

# Pinned versions. Bump RECIPE when the way a tool is built changes.
KUBE_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
TOFU_VERSION=v1.10.10
MOTO_VERSION=5.2.5
# @aws-sdk/client-bedrock-runtime from npm: the JavaScript SDK the h2c gateway test drives.
JS_SDK_VERSION=3.1164.0
# The OpenAI and Anthropic Python SDKs from PyPI: the clients the bedrock-mantle gateway tests drive.
OPENAI_PY_VERSION=3.51.0
ANTHROPIC_PY_VERSION=2.10.0
# The `openai` npm package: the JavaScript client of the bedrock-mantle gateway test.
OPENAI_JS_VERSION=7.55.0
# buildah from Debian's package (the container image tests; installed system-wide by apt).
BUILDAH_DEB_VERSION=1.28.2+ds1-3+deb12u1+b3
# Helm from the Go module proxy (the chart's tests).
HELM_VERSION=v3.22.0
# krew, the kubectl plugin manager, from the Go module proxy (the plugin install test).
KREW_VERSION=v0.4.3
# Prometheus and promtool from Debian's package (the dashboard and rules tests).
# Debian's cross compiler for the linux arm64 builds (the linker and aws-lc-sys/ring's C).
GCC_AARCH64_DEB_VERSION=4:12.2.0-3
AIGOV_ARM64_TARGET=aarch64-unknown-linux-gnu
PROMETHEUS_DEB_VERSION=2.42.0+ds-5+deb12u1
RECIPE=1

KUBE_DIR="$AIGOV_CACHE/tools/kubernetes-$KUBE_VERSION-r$RECIPE"
ETCD_DIR="$AIGOV_CACHE/tools/etcd-$ETCD_VERSION-r$RECIPE"
TOFU_DIR="$AIGOV_CACHE/tools/opentofu-$TOFU_VERSION-r$RECIPE"
MOTO_DIR="$AIGOV_CACHE/tools/moto-$MOTO_VERSION-r$RECIPE"
# Where the SDK is installed (its node_modules); tests resolve it from here with createRequire.
JS_SDK_DIR="$AIGOV_CACHE/tools/js-sdk-$JS_SDK_VERSION-r$RECIPE"

KUBE_APISERVER="$KUBE_DIR/bin/kube-apiserver"
KUBECTL="$KUBE_DIR/bin/kubectl"
ETCD="$ETCD_DIR/bin/etcd"
TOFU="$TOFU_DIR/bin/tofu"
MOTO_PYTHON="$MOTO_DIR/venv/bin/python"
LLM_SDK_DIR="$AIGOV_CACHE/tools/llm-sdks-openai-$OPENAI_PY_VERSION-anthropic-$ANTHROPIC_PY_VERSION-r$RECIPE"
LLM_SDK_PYTHON="$LLM_SDK_DIR/venv/bin/python"
OPENAI_JS_DIR="$AIGOV_CACHE/tools/openai-js-$OPENAI_JS_VERSION-r$RECIPE"
PROMETHEUS_DIR="$AIGOV_CACHE/tools/prometheus-$PROMETHEUS_DEB_VERSION-r$RECIPE"
KREW_DIR="$AIGOV_CACHE/tools/krew-$KREW_VERSION-r$RECIPE"
HELM_DIR="$AIGOV_CACHE/tools/helm-$HELM_VERSION-r$RECIPE"
HELM="$HELM_DIR/bin/helm"
KREW="$KREW_DIR/bin/krew"

# Loopback ports; override any of them to run two environments side by side.
ETCD_PORT="${AIGOV_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${AIGOV_ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${AIGOV_APISERVER_PORT:-16443}"
MOTO_PORT="${AIGOV_MOTO_PORT:-15000}"
BEDROCK_SIM_PORT="${AIGOV_BEDROCK_SIM_PORT:-18080}"
# aigov itself, as the demo runs it.
GATEWAY_PORT="${AIGOV_GATEWAY_PORT:-18090}"
LEDGER_PORT="${AIGOV_LEDGER_PORT:-17070}"
METRICS_PORT="${AIGOV_METRICS_PORT:-19090}"

# Cargo's target directory lives in the cache too, so CI's fresh clones build incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$AIGOV_CACHE/target}"

# Cargo judges freshness by mtimes and records each package's files relative to it, so
# binaries built from another checkout whose files are older look up to date here (with that
# checkout's paths compiled in). When the target directory last built another checkout, make
# this checkout's files the newer: cargo rebuilds our crates, never the dependencies.
claim_target_dir() {
  local mark="$CARGO_TARGET_DIR/.aigov-checkout"
  mkdir -p "$CARGO_TARGET_DIR"
  if [[ "$(cat "$mark" 2>/dev/null)" != "$AIGOV_REPO" ]]; then
    (cd "$AIGOV_REPO" && git ls-files -z | xargs -0 -r touch -c --)
    printf '%s\n' "$AIGOV_REPO" >"$mark"
  fi
}

log() { printf '\033[1m[aigov-env]\033[0m %s\n' "$*" >&2; }
die() { printf '[aigov-env] error: %s\n' "$*" >&2; exit 1; }
