#!/usr/bin/env bash
# Builds the pinned local-environment tools once and caches them outside the clone:
# kube-apiserver and kubectl, etcd, OpenTofu (all from the Go module proxy through the
# wrapper modules in tests/env/go), moto[server] (from PyPI, in its own venv) and the AWS SDK
# for JavaScript's Bedrock runtime client (from npm, in its own directory), and the OpenAI and
# Anthropic Python SDKs (from PyPI, in a venv of their own) and the `openai` npm package, and
# Prometheus with promtool (Debian's package, unpacked into the cache: nothing is installed),
# and krew and Helm (from the Go module proxy), and Debian's gcc-aarch64-linux-gnu for the
# linux arm64 release builds.
# Idempotent: a tool whose binary is already in the cache is not rebuilt.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# go_build DIR OUT_DIR LDFLAGS PACKAGE... builds packages of wrapper module DIR into OUT_DIR.
go_build() {
  local module="$1" out="$2" ldflags="$3"; shift 3
  mkdir -p "$out.partial"
  (cd "$AIGOV_REPO/tests/env/go/$module" && \
    GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $ldflags" -o "$out.partial/" "$@")
  mkdir -p "$out" && mv "$out.partial"/* "$out/" && rmdir "$out.partial"
}

build_kube() {
  [[ -x "$KUBE_APISERVER" && -x "$KUBECTL" ]] && return
  log "building kube-apiserver and kubectl $KUBE_VERSION from the Go module proxy (first run only, ~10 min)"
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local v ldflags=""
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  done
  go_build kube "$KUBE_DIR/bin" "$ldflags" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
}

build_etcd() {
  [[ -x "$ETCD" ]] && return
  log "building etcd $ETCD_VERSION from the Go module proxy (first run only)"
  go_build etcd "$ETCD_DIR/bin" "" .
}

build_tofu() {
  [[ -x "$TOFU" ]] && return
  log "building OpenTofu $TOFU_VERSION from the Go module proxy (first run only)"
  go_build tofu "$TOFU_DIR/bin" "-X github.com/opentofu/opentofu/version.dev=no" github.com/opentofu/opentofu/cmd/tofu
}

install_moto() {
  [[ -x "$MOTO_PYTHON" ]] && "$MOTO_PYTHON" -c 'import moto, cbor2, boto3' 2>/dev/null && return
  log "installing moto[server]==$MOTO_VERSION into $MOTO_DIR/venv"
  rm -rf "$MOTO_DIR" && mkdir -p "$MOTO_DIR"
  python3 -m venv "$MOTO_DIR/venv"
  "$MOTO_PYTHON" -m pip install --quiet --disable-pip-version-check \
    -r "$AIGOV_REPO/tests/env/moto/requirements.txt"
}

install_llm_sdks() {
  [[ -x "$LLM_SDK_PYTHON" ]] && "$LLM_SDK_PYTHON" -c 'import openai, anthropic, boto3' 2>/dev/null && return
  log "installing openai==$OPENAI_PY_VERSION and anthropic[bedrock]==$ANTHROPIC_PY_VERSION into $LLM_SDK_DIR/venv"
  rm -rf "$LLM_SDK_DIR" && mkdir -p "$LLM_SDK_DIR"
  python3 -m venv "$LLM_SDK_DIR/venv"
  "$LLM_SDK_PYTHON" -m pip install --quiet --disable-pip-version-check \
    "openai==$OPENAI_PY_VERSION" "anthropic[bedrock]==$ANTHROPIC_PY_VERSION"
}

install_openai_js() {
  local marker="$OPENAI_JS_DIR/node_modules/openai/package.json"
  [[ -f "$marker" ]] && [[ "$(node -p "require('$marker').version" 2>/dev/null)" == "$OPENAI_JS_VERSION" ]] && return
  command -v npm >/dev/null || die "npm (Node.js 18 or later) is needed for the OpenAI JavaScript SDK test"
  log "installing openai@$OPENAI_JS_VERSION (npm) into $OPENAI_JS_DIR"
  rm -rf "$OPENAI_JS_DIR" "$OPENAI_JS_DIR.partial" && mkdir -p "$OPENAI_JS_DIR.partial"
  npm install --prefix "$OPENAI_JS_DIR.partial" --no-audit --no-fund --silent "openai@$OPENAI_JS_VERSION"
  mv "$OPENAI_JS_DIR.partial" "$OPENAI_JS_DIR"
}

install_js_sdk() {
  local marker="$JS_SDK_DIR/node_modules/@aws-sdk/client-bedrock-runtime/package.json"
  [[ -f "$marker" ]] && [[ "$(node -p "require('$marker').version" 2>/dev/null)" == "$JS_SDK_VERSION" ]] && return
  command -v npm >/dev/null || die "npm (Node.js 18 or later) is needed for the JavaScript SDK test"
  log "installing @aws-sdk/client-bedrock-runtime@$JS_SDK_VERSION into $JS_SDK_DIR"
  rm -rf "$JS_SDK_DIR" "$JS_SDK_DIR.partial" && mkdir -p "$JS_SDK_DIR.partial"
  npm install --prefix "$JS_SDK_DIR.partial" --no-audit --no-fund --silent \
    "@aws-sdk/client-bedrock-runtime@$JS_SDK_VERSION"
  mv "$JS_SDK_DIR.partial" "$JS_SDK_DIR"
}

build_krew() {
  [[ -x "$KREW" ]] && return
  log "building krew $KREW_VERSION from the Go module proxy (first run only)"
  go_build krew "$KREW_DIR/bin" "-X sigs.k8s.io/krew/internal/version.gitTag=$KREW_VERSION" sigs.k8s.io/krew/cmd/krew
}

install_buildah() {
  [[ "$(dpkg-query -W -f='${Version}' buildah 2>/dev/null)" == "$BUILDAH_DEB_VERSION" ]] && return
  log "installing Debian's buildah $BUILDAH_DEB_VERSION (apt)"
  { apt-get install -y -qq "buildah=$BUILDAH_DEB_VERSION" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq "buildah=$BUILDAH_DEB_VERSION" >/dev/null; }; } \
    || die "could not install Debian's buildah $BUILDAH_DEB_VERSION"
}

install_cross_gcc() {
  [[ "$(dpkg-query -W -f='${Version}' gcc-aarch64-linux-gnu 2>/dev/null)" == "$GCC_AARCH64_DEB_VERSION" ]] \
    && command -v aarch64-linux-gnu-gcc >/dev/null && return
  log "installing Debian's gcc-aarch64-linux-gnu $GCC_AARCH64_DEB_VERSION (apt) for the linux arm64 builds"
  { apt-get install -y -qq "gcc-aarch64-linux-gnu=$GCC_AARCH64_DEB_VERSION" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq "gcc-aarch64-linux-gnu=$GCC_AARCH64_DEB_VERSION" >/dev/null; }; } \
    || die "could not install Debian's gcc-aarch64-linux-gnu $GCC_AARCH64_DEB_VERSION"
  rustup target list --installed 2>/dev/null | grep -qx "$AIGOV_ARM64_TARGET" \
    || rustup target add "$AIGOV_ARM64_TARGET" \
    || die "the Rust target $AIGOV_ARM64_TARGET is not installed and rustup could not add it"
}

build_helm() {
  [[ -x "$HELM" ]] && return
  log "building Helm $HELM_VERSION from the Go module proxy (first run only, ~5 min)"
  go_build helm "$HELM_DIR/bin" "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm.sh/helm/v3/cmd/helm
}

install_prometheus() {
  [[ -x "$PROMETHEUS_DIR/bin/prometheus" && -x "$PROMETHEUS_DIR/bin/promtool" ]] && return
  log "unpacking Debian's prometheus $PROMETHEUS_DEB_VERSION into $PROMETHEUS_DIR"
  local work; work="$(mktemp -d)"
  (cd "$work" && { apt-get download -q "prometheus=$PROMETHEUS_DEB_VERSION" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get download -q "prometheus=$PROMETHEUS_DEB_VERSION" >/dev/null 2>&1; }; } \
    && dpkg-deb -x prometheus_*.deb root) || die "could not fetch Debian's prometheus $PROMETHEUS_DEB_VERSION"
  mkdir -p "$PROMETHEUS_DIR/bin"
  cp "$work/root/usr/bin/prometheus" "$work/root/usr/bin/promtool" "$PROMETHEUS_DIR/bin/"
  rm -rf "$work"
}

case "${1:-all}" in
  kube) build_kube ;;
  etcd) build_etcd ;;
  tofu) build_tofu ;;
  moto) install_moto ;;
  js-sdk) install_js_sdk ;;
  llm-sdks) install_llm_sdks; install_openai_js ;;
  prometheus) install_prometheus ;;
  krew) build_krew ;;
  helm) build_helm ;;
  buildah) install_buildah ;;
  cross) install_cross_gcc ;;
  all) install_moto; install_js_sdk; install_llm_sdks; install_openai_js; install_prometheus; install_buildah; install_cross_gcc; build_etcd; build_kube; build_tofu; build_krew; build_helm ;;
  *) die "usage: tools.sh [all|kube|etcd|tofu|moto|js-sdk|llm-sdks|prometheus|krew|helm|buildah|cross]" ;;
esac
