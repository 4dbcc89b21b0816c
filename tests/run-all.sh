#!/usr/bin/env bash
# The README's test command: installs and starts everything it needs, then runs every check.
#   1. builds/caches the pinned tools (tests/env/tools.sh) and starts a private local
#      environment (its own run directory and ports, so a running demo is left alone);
#   2. cargo fmt --check, cargo clippy -D warnings;
#   3. cargo test --workspace: unit tests, the simulator's SDK tests, and the end-to-end tests
#      against the real kube-apiserver, moto and the Bedrock simulator;
#   4. runs the README's first command (tests/demo.sh) against the same environment and checks
#      what it shows;
#   5. stops the environment by PID and removes its state.
set -euo pipefail
export AIGOV_RUN="${AIGOV_TEST_RUN:-${TMPDIR:-/tmp}/aigov-test-env}"
export AIGOV_ETCD_PORT=23791 AIGOV_ETCD_PEER_PORT=23801 AIGOV_APISERVER_PORT=16444
export AIGOV_MOTO_PORT=15001 AIGOV_BEDROCK_SIM_PORT=18081
export AIGOV_GATEWAY_PORT=18091 AIGOV_LEDGER_PORT=17071 AIGOV_METRICS_PORT=19091
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
log "cargo build (the aigov-controller binary the end-to-end tests run)"
cargo build --workspace --bins --quiet
log "cargo build --target $AIGOV_ARM64_TARGET (the linux arm64 release artifacts the provider and krew tests package)"
cargo build --target "$AIGOV_ARM64_TARGET" -p terraform-provider-aigov -p kubectl-aigov --bins --quiet
log "cargo test"
results="$AIGOV_RUN/cargo-test.log"
cargo test --workspace --no-fail-fast 2>&1 | tee "$results"
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$results" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$results" | awk '{s+=$1} END {print s+0}')
(( passed > 0 )) || die "cargo test ran no test"
log "the README's first command (tests/demo.sh) in this environment"
demo="$AIGOV_RUN/demo.log"
bash tests/demo.sh >"$demo" 2>&1 || { cat "$demo"; die "tests/demo.sh failed"; }
for expected in \
    'team-research +research-daily +5\.00 +4\.921599 +98\.4 +Throttled' \
    '^engineering +300\.00 +[45]\.[0-9]+ +1\.[0-9]+ +Active' \
    'Namespace: +team-research' \
    '^\(cluster\) +engineering +Active' \
    '^team-monthly +400\.00 ' \
    'Priced by: +AIModelPrice ' \
    'Priced by: +the FALLBACK' \
    '^team-standard +team-monthly +250\.00 +[1-9][0-9]* +[1-9][0-9]* ' \
    '^engineering \(Active\) +\$[45]\.[0-9]+ of \$300\.00' \
    '└ research-daily \(Throttled\) +\$4\.92 of \$5\.00' \
    'refused \(AccessDeniedException\): AIBudget team-research/research-daily' \
    'not allowed by AIBudget team-chat/chat-monthly' \
    'Normal +ThresholdCrossed .*research-daily: 50% threshold crossed' \
    'Warning +BudgetExhausted .*research-daily is exhausted: spent \$4\.92 of \$5\.00' \
    'Reason: +HeadroomExhausted' \
    '^  - AIBudget team-research/research-daily: 50% threshold crossed' \
    'AIBudget team-research/research-daily is exhausted' \
    'team-research +research-daily +Throttled +\$4\.92 +\$5\.00 +98\.4%' \
    '^  anthropic\.claude-3-5-sonnet-20240620-v1:0 +\$4\.92 +100% +41' \
    '^  notebook +\$4\.92 +100% +42 +1' \
    'team-research +notebook +\$[0-9.,]+/h +\$4\.92 +41 ' \
    '^anthropic\.claude-3-5-sonnet-20240620-v1:0 .* -100% +4 +0' \
    '^anthropic\.claude-3-5-haiku-20241022-v1:0 .* new +0 +6' \
    '^timestamp,namespace,budget,workload,pod,model,operation' \
    '^  dataset-analysis +\$4\.92 +100% +41' \
    'add up to \$4\.921599: .*they agree' \
    '^  user: 3 tracked this period, 0 at their \$2\.00 limit' \
    '^    user-1 +\$0\.[0-9]+' \
    '^ +matched +[1-9][0-9]* +\$[0-9]' \
    '^ +unstamped +[1-9][0-9]* +<?\$0\.[0-9]+' \
    '^ +unstamped +[^ ]+ +anthropic\.claude-3-5-haiku-20241022-v1:0 +arn:aws:sts::123456789012:assumed-role/team-chat-app/laptop' \
    'Warning +BypassDetected +1 call\(s\) to anthropic\.claude-3-5-haiku-20241022-v1:0 made around the aigov gateway' \
    'aigov_budget_spent_usd\{namespace="team-research",budget="research-daily"\} 4\.921599'; do
  grep -qE -- "$expected" "$demo" || { cat "$demo"; die "tests/demo.sh did not show: $expected"; }
done
passed=$((passed + 1))
log "all checks passed in $((SECONDS - started))s"
echo "$passed passed, $failed failed"
