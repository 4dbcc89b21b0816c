#!/usr/bin/env bash
# The gateway benchmark, side by side in one run on this machine:
#   the Bedrock simulator called directly, versus through aigov's gateway (budget enforcement
#   on: the caller's pod selected by a budget, 10,000 AIBudgets loaded in its caches), versus
#   through LiteLLM's proxy (`litellm[proxy]` from PyPI, pointed at the same simulator) when
#   it installs here.
# Prints p50/p99 latency and added latency at 1,000 and 5,000 requests per second, the highest
# rate sustained, gateway CPU per request and peak memory. The gateway and the controller run
# as separate processes, as deployed (controller/deploy/). Open-loop load (tests/bench/src/bin/
# loadgen.rs), release builds, everything on 127.0.0.1.
# Usage: bash tests/bench/gateway.sh   (needs the local environment's tools; starts what it needs)
#   AIGOV_BENCH_BASELINE_GATEWAY="/path/to/old-binary [flags]" also starts that gateway (an
#   earlier release, say `aigov-controller --role gateway`) beside this checkout's, against the
#   same controller and simulator, and measures it in the same rounds (label aigov-baseline).
set -euo pipefail
export AIGOV_RUN="${AIGOV_BENCH_RUN:-/tmp/aigov-bench-env}"
export AIGOV_ETCD_PORT=23792 AIGOV_ETCD_PEER_PORT=23802 AIGOV_APISERVER_PORT=16445
export AIGOV_MOTO_PORT=15002 AIGOV_BEDROCK_SIM_PORT=18082
source "$(dirname "${BASH_SOURCE[0]}")/../env/lib.sh"
cd "$AIGOV_REPO"
BUDGETS="${AIGOV_BENCH_BUDGETS:-10000}"
SECONDS_PER_RUN="${AIGOV_BENCH_SECONDS:-10}"
SIM_PORT=18180 GW_PORT=18190 LEDGER_PORT=17190 METRICS_PORT=19190 LITELLM_PORT=18200
POD_IP=127.0.0.80

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
sleep 0.5

log "loading $BUDGETS AIBudgets across $((BUDGETS / 100)) namespaces (+1 selecting the benchmark pod)"
python3 - "$BUDGETS" >"$AIGOV_RUN/budgets.yaml" <<'PY'
import sys
n = int(sys.argv[1])
for ns in range(n // 100):
    print(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: load-{ns}}}\n---")
    for b in range(100):
        print(f"apiVersion: aigov.dev/v1alpha1\nkind: AIBudget\nmetadata: {{name: b-{b}, namespace: load-{ns}}}\n"
              f"spec: {{limit: '{100 + b}.00', selector: {{serviceAccounts: [sa-{b}]}}}}\n---")
print("apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n---")
print("apiVersion: aigov.dev/v1alpha1\nkind: AIBudget\nmetadata: {name: bench, namespace: bench}\nspec: {limit: '1000000.00'}\n---")
print("apiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: bench}\n"
      "spec: {automountServiceAccountToken: false, containers: [{name: c, image: example.invalid/c:1}]}")
PY
t0=$SECONDS
kubectl apply --server-side -f "$AIGOV_RUN/budgets.yaml" >/dev/null
kubectl patch pod -n bench client --subresource=status --type=merge \
  -p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$POD_IP\",\"podIPs\":[{\"ip\":\"$POD_IP\"}]}}" >/dev/null
log "applied in $((SECONDS - t0))s"

kubectl create namespace aigov-system >/dev/null 2>&1 || true
# As deployed: the controller and the gateway are separate processes (Deployments).
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$AIGOV_MOTO_ENDPOINT"
start_bg aigov-controller "$REL/aigov-controller" --role controller --identity bench-controller --namespace aigov-system \
    --ledger-listen "127.0.0.1:$LEDGER_PORT" --metrics-listen "127.0.0.1:$((METRICS_PORT + 1))" --settle 500ms --alerts false
start_bg aigov "$REL/aigov-gateway" --identity bench-gateway \
    --gateway-listen "127.0.0.1:$GW_PORT" --metrics-listen "127.0.0.1:$METRICS_PORT" \
    --controller-endpoints "http://127.0.0.1:$LEDGER_PORT" --bedrock-endpoint "http://127.0.0.1:$SIM_PORT"
AIGOV_PID=$(cat "$AIGOV_RUN/pids/aigov")
BASE_PORT=$((GW_PORT + 5)) BASE_METRICS=$((METRICS_PORT + 5))
if [[ -n "${AIGOV_BENCH_BASELINE_GATEWAY:-}" ]]; then
  # shellcheck disable=SC2086
  start_bg aigov-baseline $AIGOV_BENCH_BASELINE_GATEWAY --identity bench-baseline \
      --gateway-listen "127.0.0.1:$BASE_PORT" --metrics-listen "127.0.0.1:$BASE_METRICS" \
      --controller-endpoints "http://127.0.0.1:$LEDGER_PORT" --bedrock-endpoint "http://127.0.0.1:$SIM_PORT"
  BASE_PID=$(cat "$AIGOV_RUN/pids/aigov-baseline")
  for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$BASE_METRICS/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  kill -0 "$BASE_PID" || { cat "$AIGOV_RUN/logs/aigov-baseline.log"; die "the baseline gateway exited"; }
fi
for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
kill -0 "$AIGOV_PID" || { cat "$AIGOV_RUN/logs/aigov.log"; die "the aigov gateway exited"; }
log "waiting until the controller has reconciled every budget once"
for _ in $(seq 1 900); do
  n=$(curl -fsS "http://127.0.0.1:$((METRICS_PORT + 1))/metrics" | awk '/^aigov_reconcile_duration_seconds_count/ {print $2}')
  [[ "${n%.*}" -ge $((BUDGETS + 1)) ]] 2>/dev/null && break
  sleep 1
done
sleep 3

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
loadgen() { "$REL/loadgen" "$@"; }
RESULTS="$AIGOV_RUN/results.jsonl"
: >"$RESULTS"

# through LABEL PID PORT RATE: one round through a gateway, with its CPU over the round.
through() {
  local before after
  before=$(cpu_ticks "$2")
  loadgen --seconds "$SECONDS_PER_RUN" --url "http://127.0.0.1:$3" --rate "$4" --source "$POD_IP" --label "$1" | tee -a "$RESULTS"
  after=$(cpu_ticks "$2")
  echo "{\"label\":\"$1-cpu\",\"rate\":$4,\"cpu_ticks\":$((after - before)),\"requests\":$(($4 * (SECONDS_PER_RUN + 2)))}" | tee -a "$RESULTS"
}
for rate in 1000 5000; do
  loadgen --seconds "$SECONDS_PER_RUN" --url "http://127.0.0.1:$SIM_PORT" --rate "$rate" --label direct | tee -a "$RESULTS"
  through aigov "$AIGOV_PID" "$GW_PORT" "$rate"
  if [[ -n "${BASE_PID:-}" ]]; then
    through aigov-baseline "$BASE_PID" "$BASE_PORT" "$rate"
    loadgen --seconds "$SECONDS_PER_RUN" --url "http://127.0.0.1:$SIM_PORT" --rate "$rate" --label direct | tee -a "$RESULTS"
    through aigov "$AIGOV_PID" "$GW_PORT" "$rate"
  fi
done

log "highest sustained rate through the gateway (achieved >= 97% of offered, p99 < 50 ms)"
for rate in 2000 3000 4000 5000 6000 7000 8000 10000 12000; do
  line=$(loadgen --seconds "$SECONDS_PER_RUN" --url "http://127.0.0.1:$GW_PORT" --rate "$rate" --source "$POD_IP" --label aigov-max --warmup 1)
  echo "$line" | tee -a "$RESULTS"
  ok=$(python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(int(r['achieved_rps'] >= 0.97*r['rate'] and r['p99_us'] < 50000 and r['errors'] == 0))" "$line")
  [[ "$ok" == 1 ]] || break
done
grep VmHWM "/proc/$AIGOV_PID/status" | awk '{print "{\"label\":\"aigov-peak-rss-kb\",\"value\":" $2 "}"}' | tee -a "$RESULTS"
[[ -z "${BASE_PID:-}" ]] || grep VmHWM "/proc/$BASE_PID/status" | awk '{print "{\"label\":\"aigov-baseline-peak-rss-kb\",\"value\":" $2 "}"}' | tee -a "$RESULTS"
grep VmHWM "/proc/$(cat "$AIGOV_RUN/pids/aigov-controller")/status" | awk '{print "{\"label\":\"controller-peak-rss-kb\",\"value\":" $2 "}"}' | tee -a "$RESULTS"

LITELLM="$AIGOV_CACHE/tools/litellm-venv/bin/litellm"
if [[ -x "$LITELLM" ]]; then
  log "LiteLLM proxy with budget tracking, pointed at the same simulator"
  cat >"$AIGOV_RUN/litellm.yaml" <<YAML
model_list:
  - model_name: haiku
    litellm_params:
      model: bedrock/anthropic.claude-3-haiku-20240307-v1:0
      aws_bedrock_runtime_endpoint: http://127.0.0.1:$SIM_PORT
      aws_region_name: us-east-1
      aws_access_key_id: bench
      aws_secret_access_key: bench
litellm_settings:
  max_budget: 1000000
  budget_duration: 30d
general_settings:
  master_key: sk-bench
YAML
  start_bg litellm "$LITELLM" --config "$AIGOV_RUN/litellm.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" --num_workers 1
  for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$LITELLM_PORT/health/liveliness" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fsS "http://127.0.0.1:$LITELLM_PORT/health/liveliness" >/dev/null || { tail -n 30 "$AIGOV_RUN/logs/litellm.log"; die "LiteLLM did not start"; }
  # Per rate: direct, aigov, LiteLLM, in that order; stop at the first rate LiteLLM cannot
  # sustain (its backlog would keep the CPU busy and distort every later run).
  for rate in 25 50 100 150 200 400; do
    loadgen --url "http://127.0.0.1:$SIM_PORT" --rate "$rate" --label direct --seconds 10 --warmup 1 | tee -a "$RESULTS"
    loadgen --url "http://127.0.0.1:$GW_PORT" --rate "$rate" --source "$POD_IP" --label aigov --seconds 10 --warmup 1 | tee -a "$RESULTS"
    line=$(loadgen --url "http://127.0.0.1:$LITELLM_PORT" --api openai --key sk-bench --rate "$rate" --label litellm --seconds 10 --warmup 1)
    echo "$line" | tee -a "$RESULTS"
    ok=$(python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(int(r['achieved_rps'] >= 0.97*r['rate'] and r['errors'] == 0 and r['p99_us'] < 1000000))" "$line")
    [[ "$ok" == 1 ]] || { log "LiteLLM does not sustain $rate rps"; break; }
  done
else
  log "LiteLLM is not installed ($LITELLM): python3 -m venv $AIGOV_CACHE/tools/litellm-venv && $AIGOV_CACHE/tools/litellm-venv/bin/pip install 'litellm[proxy]'"
fi

log "summary (added latency = through the proxy minus direct at the same offered rate)"
python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
direct = {}
for r in rows:
    if r.get("label") == "direct":
        direct[r["rate"]] = r  # the round just before (each proxied round follows its own)
    if r.get("label") in ("aigov", "aigov-baseline", "litellm") and r["rate"] in direct:
        d = direct[r["rate"]]
        print(f"{r['label']:14} {r['rate']:>6} rps offered, {r['achieved_rps']:>7.0f} achieved, errors {r['errors']:>5}: "
              f"p50 {r['p50_us']/1000:7.3f} ms (+{(r['p50_us']-d['p50_us'])/1000:.3f}), "
              f"p99 {r['p99_us']/1000:7.3f} ms (+{(r['p99_us']-d['p99_us'])/1000:.3f})  [direct p50 {d['p50_us']/1000:.3f} p99 {d['p99_us']/1000:.3f}]")
for r in rows:
    if r.get("label") in ("aigov-cpu", "aigov-baseline-cpu"):
        hz = 100
        print(f"{r['label'][:-4]} CPU per request at {r['rate']} rps: {r['cpu_ticks'] / hz / r['requests'] * 1e6:.1f} us")
    if r.get("label") == "aigov-max":
        print(f"aigov at {r['rate']} rps offered: {r['achieved_rps']:.0f} achieved, p99 {r['p99_us']/1000:.3f} ms, errors {r['errors']}")
    if r.get("label") == "aigov-peak-rss-kb":
        print(f"gateway peak memory (RSS high-water mark, all budgets loaded in its caches): {r['value']/1024:.1f} MiB")
    if r.get("label") == "aigov-baseline-peak-rss-kb":
        print(f"baseline gateway peak memory (it ran no max-rate rounds): {r['value']/1024:.1f} MiB")
    if r.get("label") == "controller-peak-rss-kb":
        print(f"controller peak memory (RSS high-water mark): {r['value']/1024:.1f} MiB")
PY
