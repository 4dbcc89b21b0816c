#!/usr/bin/env bash
# The README's test command: installs and starts everything it needs, then runs every check.
#   1. builds/caches the pinned tools (tests/env/tools.sh) and starts a private local
#      environment (its own run directory and ports, so a running demo is left alone);
#   2. cargo fmt --check, cargo clippy -D warnings;
#   3. cargo test --workspace: unit tests, the simulator's SDK tests, and the end-to-end tests
#      against the real kube-apiserver, moto and the Bedrock simulator;
#   4. stops the environment by PID and removes its state.
set -euo pipefail
export AIGOV_RUN="${AIGOV_TEST_RUN:-${TMPDIR:-/tmp}/aigov-test-env}"
export AIGOV_ETCD_PORT=23791 AIGOV_ETCD_PEER_PORT=23801 AIGOV_APISERVER_PORT=16444
export AIGOV_MOTO_PORT=15001 AIGOV_BEDROCK_SIM_PORT=18081
source "$(dirname "${BASH_SOURCE[0]}")/env/lib.sh"
cd "$AIGOV_REPO"

started=$SECONDS
trap 'bash "$AIGOV_REPO/tests/env/down.sh" --purge >/dev/null 2>&1 || true' EXIT
bash tests/env/down.sh --purge >/dev/null 2>&1 || true
bash tests/env/up.sh
source "$AIGOV_RUN/env.sh"
log "environment ready after $((SECONDS - started))s"

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
log "cargo test"
results="$AIGOV_RUN/cargo-test.log"
cargo test --workspace 2>&1 | tee "$results"
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$results" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$results" | awk '{s+=$1} END {print s+0}')
(( passed > 0 )) || die "cargo test ran no test"
log "all checks passed in $((SECONDS - started))s"
echo "$passed passed, $failed failed"
