#!/usr/bin/env bash
# Attribution and per-value limits, side by side in one run on this machine (issue #16):
#   one gateway (and its controller, separate processes as deployed), two budgets:
#   `plain` (no attribution) selects pod 127.0.0.81, `tagged` (attribution.keys [feature, user],
#   limitPerValue user $1,000, so nothing is refused) selects pod 127.0.0.82. Rounds alternate
#   plain (calls without metadata) and tagged (every call tagged feature=bench and one of 1,000
#   users in turn), at the same offered rates, so both see the same machine.
# Prints per round p50/p99 latency and the gateway's CPU per call, the tagged/plain ratios, and
# then the memory of the gateway and the controller before and after 100,000 distinct users
# have called through one budget (every one a value account on both sides).
# Usage: bash tests/bench/attribution.sh   (~6 minutes; starts and stops its own environment)
set -euo pipefail
export AIGOV_RUN="${AIGOV_BENCH_RUN:-/tmp/aigov-bench-attr-env}"
export AIGOV_ETCD_PORT=23793 AIGOV_ETCD_PEER_PORT=23803 AIGOV_APISERVER_PORT=16446
export AIGOV_MOTO_PORT=15003 AIGOV_BEDROCK_SIM_PORT=18083
source "$(dirname "${BASH_SOURCE[0]}")/../env/lib.sh"
cd "$AIGOV_REPO"
SECONDS_PER_RUN="${AIGOV_BENCH_SECONDS:-10}"
VALUES="${AIGOV_BENCH_VALUES:-100000}"
SIM_PORT=18280 GW_PORT=18290 LEDGER_PORT=17290 METRICS_PORT=19290
PLAIN_IP=127.0.0.81 TAGGED_IP=127.0.0.82

trap 'bash tests/env/down.sh --purge >/dev/null 2>&1 || true' EXIT
bash tests/env/down.sh --purge >/dev/null 2>&1 || true
bash tests/env/up.sh >/dev/null
source "$AIGOV_RUN/env.sh"
log "building release binaries"
cargo build --release --quiet -p aigov-controller -p aigov-gateway -p aigov-bedrock-sim -p aigov-bench
REL="$CARGO_TARGET_DIR/release"

start_bg() { # name cmd...
  local name="$1"; shift
  setsid "$@" >"$AIGOV_RUN/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$AIGOV_RUN/pids/$name"
}
start_bg bench-sim "$REL/aigov-bedrock-sim" --listen "127.0.0.1:$SIM_PORT"

kubectl apply --server-side -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: v1
kind: Namespace
metadata: {name: tagged}
---
apiVersion: aigov.dev/v1alpha1
kind: AIBudget
metadata: {name: plain, namespace: plain}
spec: {limit: '1000000.00'}
---
apiVersion: aigov.dev/v1alpha1
kind: AIBudget
metadata: {name: tagged, namespace: tagged}
spec:
  limit: '1000000.00'
  attribution: {keys: [feature, user]}
  limitPerValue: [{key: user, limit: '1000.00'}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: plain}
spec: {automountServiceAccountToken: false, containers: [{name: c, image: example.invalid/c:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: tagged}
spec: {automountServiceAccountToken: false, containers: [{name: c, image: example.invalid/c:1}]}
YAML
for pair in "plain $PLAIN_IP" "tagged $TAGGED_IP"; do
  set -- $pair
  kubectl patch pod -n "$1" client --subresource=status --type=merge \
    -p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$2\",\"podIPs\":[{\"ip\":\"$2\"}]}}" >/dev/null
done

kubectl create namespace aigov-system >/dev/null 2>&1 || true
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$AIGOV_MOTO_ENDPOINT"
start_bg aigov-controller "$REL/aigov-controller" --role controller --identity bench-controller --namespace aigov-system \
    --ledger-listen "127.0.0.1:$LEDGER_PORT" --metrics-listen "127.0.0.1:$((METRICS_PORT + 1))" --settle 500ms --alerts false
start_bg aigov "$REL/aigov-gateway" --identity bench-gateway \
    --gateway-listen "127.0.0.1:$GW_PORT" --metrics-listen "127.0.0.1:$METRICS_PORT" \
    --controller-endpoints "http://127.0.0.1:$LEDGER_PORT" --bedrock-endpoint "http://127.0.0.1:$SIM_PORT"
GW_PID=$(cat "$AIGOV_RUN/pids/aigov") CTRL_PID=$(cat "$AIGOV_RUN/pids/aigov-controller")
for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
kill -0 "$GW_PID" || { cat "$AIGOV_RUN/logs/aigov.log"; die "the gateway exited"; }
sleep 2

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
RESULTS="$AIGOV_RUN/results.jsonl"
: >"$RESULTS"
# round LABEL SOURCE RATE [loadgen args...]: one round, with the gateway's CPU over it.
round() {
  local label="$1" source="$2" rate="$3" before after line
  shift 3
  before=$(cpu_ticks "$GW_PID")
  line=$("$REL/loadgen" --seconds "$SECONDS_PER_RUN" --warmup 1 --url "http://127.0.0.1:$GW_PORT" \
    --rate "$rate" --source "$source" --label "$label" "$@")
  after=$(cpu_ticks "$GW_PID")
  echo "$line" | python3 -c "import json,sys; r=json.load(sys.stdin); r['cpu_ticks']=$((after - before)); r['requests']=$rate*($SECONDS_PER_RUN+1); print(json.dumps(r))" | tee -a "$RESULTS"
}
for rate in 1000 3000; do
  for _ in 1 2; do
    round plain "$PLAIN_IP" "$rate"
    round tagged "$TAGGED_IP" "$rate" --users 1000
  done
done

log "memory with $VALUES distinct users in one budget"
sleep 2
gw_before=$(rss_kb "$GW_PID") ctrl_before=$(rss_kb "$CTRL_PID")
secs=$(( (VALUES + 1999) / 2000 ))
"$REL/loadgen" --seconds "$secs" --warmup 0 --url "http://127.0.0.1:$GW_PORT" --rate 2000 \
  --source "$TAGGED_IP" --label values --users "$VALUES" | tee -a "$RESULTS"
sleep 3
tracked=$(kubectl get aibudget -n tagged tagged -o jsonpath='{.status.valueLimits[0].values}')
echo "{\"label\":\"memory\",\"values\":$VALUES,\"tracked\":${tracked:-0},\"gateway_before_kb\":$gw_before,\"gateway_after_kb\":$(rss_kb "$GW_PID"),\"controller_before_kb\":$ctrl_before,\"controller_after_kb\":$(rss_kb "$CTRL_PID")}" | tee -a "$RESULTS"

log "summary"
python3 - "$RESULTS" <<'PY'
import json, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(list)
for r in rows:
    if r["label"] in ("plain", "tagged"):
        by[(r["label"], r["rate"])].append(r)
def med(xs):
    xs = sorted(xs); return xs[len(xs) // 2]
for rate in sorted({k[1] for k in by}):
    figs = {}
    for label in ("plain", "tagged"):
        rs = by[(label, rate)]
        cpu = sum(r["cpu_ticks"] for r in rs) / 100 / sum(r["requests"] for r in rs) * 1e6
        p50 = med([r["p50_us"] for r in rs]) / 1000; p99 = med([r["p99_us"] for r in rs]) / 1000
        errs = sum(r["errors"] for r in rs)
        figs[label] = (p50, p99, cpu)
        print(f"{rate:>5} rps {label:7} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  gateway CPU {cpu:6.1f} us/call  errors {errs}")
    (a50, a99, acpu), (b50, b99, bcpu) = figs["plain"], figs["tagged"]
    print(f"{rate:>5} rps tagged/plain: p50 x{b50 / a50:.2f}, p99 x{b99 / a99:.2f}, CPU x{bcpu / acpu:.2f}")
for r in rows:
    if r["label"] == "values":
        print(f"{r['ok']} tagged calls of {r['sent']} answered 200 over the distinct-user run (errors {r['errors']})")
    if r["label"] == "memory":
        g = (r["gateway_after_kb"] - r["gateway_before_kb"]) / 1024
        c = (r["controller_after_kb"] - r["controller_before_kb"]) / 1024
        print(f"{r['values']} distinct users ({r['tracked']} tracked by the ledger): gateway RSS "
              f"{r['gateway_before_kb']/1024:.1f} -> {r['gateway_after_kb']/1024:.1f} MiB (+{g:.1f}, "
              f"{g * 1024 * 1024 / r['values']:.0f} B per value); controller {r['controller_before_kb']/1024:.1f} -> "
              f"{r['controller_after_kb']/1024:.1f} MiB (+{c:.1f}, {c * 1024 * 1024 / r['values']:.0f} B per value)")
PY
