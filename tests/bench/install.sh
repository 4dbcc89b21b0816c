#!/usr/bin/env bash
# The install benchmark: the size of the controller and gateway images (built with buildah from
# the chosen profile's binaries, as controller/image/build.sh builds them: the binary, the
# libraries it loads, CA certificates, passwd), and the Helm chart's render time (`helm
# template`, median of RUNS) and install time (`helm install` into the local kube-apiserver
# until Helm returns, then `helm uninstall`, median of RUNS; no kubelet, so pods do not start).
# Usage: bash tests/bench/install.sh   (starts and stops its own environment)
#   AIGOV_BENCH_PROFILE=debug skips the release build (the sizes are then the debug binaries').
set -euo pipefail
export AIGOV_RUN="${AIGOV_BENCH_RUN:-/tmp/aigov-bench-install}"
export AIGOV_ETCD_PORT="${AIGOV_ETCD_PORT:-23795}" AIGOV_ETCD_PEER_PORT="${AIGOV_ETCD_PEER_PORT:-23805}"
export AIGOV_APISERVER_PORT="${AIGOV_APISERVER_PORT:-16448}" AIGOV_MOTO_PORT="${AIGOV_MOTO_PORT:-15005}"
export AIGOV_BEDROCK_SIM_PORT="${AIGOV_BEDROCK_SIM_PORT:-18085}"
source "$(dirname "${BASH_SOURCE[0]}")/../env/lib.sh"
cd "$AIGOV_REPO"
RUNS="${AIGOV_BENCH_RUNS:-5}" PROFILE="${AIGOV_BENCH_PROFILE:-release}"
storage="$AIGOV_RUN/buildah"
trap 'bash "$AIGOV_REPO/tests/env/down.sh" --purge >/dev/null 2>&1 || true; rm -rf "$storage"' EXIT
bash tests/env/down.sh --purge >/dev/null 2>&1 || true
bash tests/env/up.sh >/dev/null
source "$AIGOV_RUN/env.sh"

log "building the $PROFILE controller and gateway"
if [[ "$PROFILE" == release ]]; then
  cargo build --release --quiet -p aigov-controller -p aigov-gateway
else
  cargo build --quiet -p aigov-controller -p aigov-gateway
fi
export BUILDAH_ARGS="--storage-driver vfs --root $storage/root --runroot $storage/run"
echo "== images ($PROFILE binaries)"
printf '%-12s %14s %14s\n' image binary_bytes image_bytes
for role in controller gateway; do
  binary="$CARGO_TARGET_DIR/$PROFILE/aigov-$role"
  tag="localhost/aigov-$role:bench"
  bash controller/image/build.sh "$role" "$tag" "$binary" >/dev/null
  # shellcheck disable=SC2086
  size="$(buildah $BUILDAH_ARGS inspect --type image --format '{{.Size}}' "$tag" 2>/dev/null \
    || buildah $BUILDAH_ARGS images --noheading --format '{{.Size}}' "$tag")"
  printf '%-12s %14s %14s\n' "aigov-$role" "$(stat -c %s "$binary")" "$size"
done

chart=controller/deploy/chart/aigov
export HELM_CACHE_HOME="$AIGOV_RUN/helm/cache" HELM_CONFIG_HOME="$AIGOV_RUN/helm/config" HELM_DATA_HOME="$AIGOV_RUN/helm/data"
median_ms() { python3 -c 'import statistics, sys; print(round(statistics.median(float(x) for x in sys.argv[1:]) * 1000))' "$@"; }
now() { date +%s.%N; }
render=() install=()
for _ in $(seq "$RUNS"); do
  t0="$(now)"; "$AIGOV_HELM" template aigov "$chart" -n aigov-system >/dev/null; t1="$(now)"
  render+=("$(python3 -c "print($t1 - $t0)")")
  t0="$(now)"
  "$AIGOV_HELM" install aigov "$chart" -n aigov-bench --create-namespace --set aws.region=eu-west-1 >/dev/null
  t1="$(now)"
  install+=("$(python3 -c "print($t1 - $t0)")")
  "$AIGOV_HELM" uninstall aigov -n aigov-bench >/dev/null
done
objects="$("$AIGOV_HELM" template aigov "$chart" -n aigov-system | grep -c '^kind:')"
echo "== chart ($objects objects, median of $RUNS)"
echo "helm template: $(median_ms "${render[@]}") ms"
echo "helm install:  $(median_ms "${install[@]}") ms"
