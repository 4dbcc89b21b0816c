#!/usr/bin/env bash
# The controller benchmark: 5,000 AIBudgets across 500 namespaces on the local kube-apiserver,
# receiving a steady usage stream over the ledger's real gRPC API (tests/bench/src/bin/
# ledgerload.rs stands in for the gateways). Prints: time until every status is current after
# start-up and after the stream stops, status writes per second, usage records ingested per
# second, controller CPU and peak memory.
# Usage: bash tests/bench/controller.sh   (starts and stops its own environment)
#   AIGOV_BENCH_CLUSTER_BUDGETS=50 adds 50 ClusterAIBudgets, cap-c over the namespaces load-n
#   with n % 50 == c (by label): every record is then charged to its AIBudget and to a cap, and
#   the caps' statuses are checked exact too. tests/bench/controller_levels.sh runs both.
#   AIGOV_BENCH_SUMMARY=/path/file.json also writes the summary's figures there.
#   AIGOV_BENCH_CONTROLLER_BIN=/path/to/aigov-controller runs another build (an earlier
#   release, say) instead of this checkout's, for a before/after comparison.
set -euo pipefail
export AIGOV_RUN="${AIGOV_BENCH_RUN:-/tmp/aigov-bench-ctl}"
export AIGOV_ETCD_PORT=23793 AIGOV_ETCD_PEER_PORT=23803 AIGOV_APISERVER_PORT=16446
export AIGOV_MOTO_PORT=15003 AIGOV_BEDROCK_SIM_PORT=18083
source "$(dirname "${BASH_SOURCE[0]}")/../env/lib.sh"
cd "$AIGOV_REPO"
NAMESPACES="${AIGOV_BENCH_NAMESPACES:-500}" PER_NS="${AIGOV_BENCH_PER_NAMESPACE:-10}"
RATE="${AIGOV_BENCH_RATE:-5000}" LOAD_SECONDS="${AIGOV_BENCH_SECONDS:-30}"
CAPS="${AIGOV_BENCH_CLUSTER_BUDGETS:-0}"
BUDGETS=$((NAMESPACES * PER_NS))
LEDGER_PORT=17290 METRICS_PORT=19290

trap 'bash tests/env/down.sh --purge >/dev/null 2>&1 || true' EXIT
bash tests/env/down.sh --purge >/dev/null 2>&1 || true
bash tests/env/up.sh >/dev/null
source "$AIGOV_RUN/env.sh"
log "building release binaries"
cargo build --release --quiet -p aigov-controller -p aigov-bench
REL="$CARGO_TARGET_DIR/release"
CONTROLLER_BIN="${AIGOV_BENCH_CONTROLLER_BIN:-$REL/aigov-controller}"
log "controller: $CONTROLLER_BIN"

log "applying $BUDGETS AIBudgets across $NAMESPACES namespaces and $CAPS ClusterAIBudgets"
python3 - "$NAMESPACES" "$PER_NS" "$CAPS" >"$AIGOV_RUN/budgets.yaml" <<'PY'
import sys
namespaces, per, caps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for c in range(caps):
    print(f"apiVersion: aigov.dev/v1alpha1\nkind: ClusterAIBudget\nmetadata: {{name: cap-{c}}}\n"
          f"spec: {{limit: '100000.00', thresholds: [50, 80, 100], namespaceSelector: {{matchLabels: {{bench-cap: cap-{c}}}}}}}\n---")
for ns in range(namespaces):
    labels = f", labels: {{bench-cap: cap-{ns % caps}}}" if caps else ""
    print(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: load-{ns}{labels}}}\n---")
    for b in range(per):
        print(f"apiVersion: aigov.dev/v1alpha1\nkind: AIBudget\nmetadata: {{name: b-{b}, namespace: load-{ns}}}\n"
              f"spec: {{limit: '{1000 + b}.00', thresholds: [50, 80, 100]}}\n---")
PY
t0=$SECONDS
kubectl apply --server-side -f "$AIGOV_RUN/budgets.yaml" >/dev/null
log "applied in $((SECONDS - t0))s"
kubectl create namespace aigov-system >/dev/null 2>&1 || true

metric() { curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v m="$1" '$1 == m {print int($2)}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
now_ms() { date +%s%3N; }

started=$(now_ms)
AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$AIGOV_MOTO_ENDPOINT" \
  setsid "$CONTROLLER_BIN" --role controller --identity bench-controller --namespace aigov-system \
    --ledger-listen "127.0.0.1:$LEDGER_PORT" --metrics-listen "127.0.0.1:$METRICS_PORT" \
    --settle 500ms --alerts false >"$AIGOV_RUN/logs/aigov.log" 2>&1 </dev/null &
PID=$!
echo $PID >"$AIGOV_RUN/pids/aigov"
for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
until [[ "$(metric aigov_status_writes_total || echo 0)" -ge "$((BUDGETS + CAPS))" ]]; do sleep 0.5; done
initial_ms=$(( $(now_ms) - started ))
log "every status written once after start: ${initial_ms} ms"

writes_before=$(metric aigov_status_writes_total)
cpu_before=$(cpu_ticks "$PID")
load_started=$(now_ms)
"$REL/ledgerload" --ledger "http://127.0.0.1:$LEDGER_PORT" --namespaces "$NAMESPACES" --per-namespace "$PER_NS" \
  --cluster-budgets "$CAPS" --rate "$RATE" --seconds "$LOAD_SECONDS" --expected "$AIGOV_RUN/expected.json" | tee "$AIGOV_RUN/load.json"
load_ended=$(now_ms)
writes_during=$(( $(metric aigov_status_writes_total) - writes_before ))

log "waiting until every budget's status shows exactly the spend sent"
until "$AIGOV_MOTO_PYTHON" - "$AIGOV_RUN/expected.json" <<'PY'
import json, subprocess, sys
from decimal import Decimal
expected = json.load(open(sys.argv[1]))
def spent_of(kind):
    items = json.loads(subprocess.run(["kubectl", "get", kind, "-A", "-o", "json"], capture_output=True, check=True).stdout)["items"]
    # A budget's ledger key: namespace/name, or /name for a ClusterAIBudget.
    return {f"{i['metadata'].get('namespace', '')}/{i['metadata']['name']}": Decimal(i.get("status", {}).get("spent", "0")) for i in items}
spent = spent_of("aib") | spent_of("caib")
# Claude 3 Haiku: $0.25 input, $1.25 output per 1M tokens (no override in this environment).
behind = sum(1 for k, (inp, out) in expected.items()
             if spent.get(k) != (Decimal(inp) * Decimal("0.25") + Decimal(out) * Decimal("1.25")) / Decimal(1000000))
print(f"    {behind} of {len(expected)} budgets behind", file=sys.stderr)
sys.exit(1 if behind else 0)
PY
do sleep 1; done
current_ms=$(( $(now_ms) - load_ended ))
cpu_used=$(( $(cpu_ticks "$PID") - cpu_before ))
rss=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
load_s=$(python3 -c "print(($load_ended - $load_started) / 1000)")

log "summary"
python3 - "$AIGOV_RUN/load.json" <<PY
import json
load = json.load(open("$AIGOV_RUN/load.json"))
print(f"budgets: $BUDGETS across $NAMESPACES namespaces; ClusterAIBudgets: $CAPS")
print(f"start-up: every status written once after {$initial_ms/1000:.1f} s")
print(f"usage stream: {load['records']} records in {load['seconds']:.1f} s = {load['records_per_second']:.0f} records/s ingested "
      f"(exchange p50 {load['exchange_p50_us']/1000:.2f} ms, p99 {load['exchange_p99_us']/1000:.2f} ms); {load['budgets_with_usage']} budgets received usage")
print(f"status writes during the stream: $writes_during in $load_s s = {$writes_during/$load_s:.0f}/s")
print(f"all statuses exact {$current_ms/1000:.1f} s after the stream stopped")
print(f"controller CPU during stream and catch-up: {$cpu_used/100:.1f} s; per record {$cpu_used/100/load['records']*1e6:.1f} us")
print(f"controller peak memory (VmHWM): {$rss/1024:.1f} MiB")
if "${AIGOV_BENCH_SUMMARY:-}":
    json.dump({"budgets": $BUDGETS, "cluster_budgets": $CAPS, "initial_s": $initial_ms / 1000,
               "records_per_second": load["records_per_second"], "exchange_p99_ms": load["exchange_p99_us"] / 1000,
               "writes_per_second": $writes_during / $load_s, "current_s": $current_ms / 1000,
               "cpu_per_record_us": $cpu_used / 100 / load["records"] * 1e6, "peak_mib": $rss / 1024},
              open("${AIGOV_BENCH_SUMMARY:-}", "w"))
PY
