#!/usr/bin/env bash
# The leader's memory under a steady stream (issue #21): a release aigov-controller, leader,
# with a few AIBudgets on the local kube-apiserver, receives usage records with unique
# Bedrock-shaped request IDs at a fixed rate over the ledger's real gRPC API (tests/bench/src/
# bin/ledgerload.rs stands in for the gateways), and its RSS (/proc/PID/status VmRSS) is
# sampled every few seconds. Prints every sample, the RSS growth per million calls (least
# squares of RSS on calls counted) over the whole stream and in the steady state (from twice
# the time the horizon takes to fill, below), and with a baseline build the same for it and
# the ratio of the steady-state slopes.
#
# Compressed call time: the ledger forgets request IDs by the calls' own times (the records'
# occurred_at_ms, see RecentRequests in controller/ledger/src/ledger.rs), 15 minutes behind
# the newest call of each budget, in minute buckets. The load generator stamps its records
# with a clock that starts now and runs AIGOV_BENCH_CALL_TIME_SCALE times as fast as the wall
# clock (default 60: each second of load covers a minute of call time), so the horizon passes
# 16 s into the run instead of 16 minutes. The ledger uses a record's call time only for that
# horizon, for the price in force (the catalog's, unchanged within hours) and to ignore calls
# made before a re-created budget existed (they are all after its creation here), so the
# compression changes nothing else it does. What it changes: the IDs the horizon holds are
# those of the last 15-16 minutes of CALL time, i.e. about RATE * 15.5 * 60 / SCALE of them,
# 77,500 at the default settings; a leader really receiving RATE calls a second for 16 minutes
# holds SCALE times as many (the plateau, not the slope, grows with the rate).
#
# Usage: bash tests/bench/leader_memory.sh   (starts and stops its own environment)
#   AIGOV_BENCH_BASELINE_CONTROLLER=/path/to/old/aigov-controller runs that build side by side
#   with this checkout's, at the same time and rate, each controller on its own kube-apiserver
#   (the same etcd under another prefix: two leaders over one set of AIBudgets would overwrite
#   each other's statuses), each fed by its own load generator.
#   AIGOV_BENCH_RATE (5000 records/s per controller), AIGOV_BENCH_SECONDS (180),
#   AIGOV_BENCH_CALL_TIME_SCALE (60), AIGOV_BENCH_SAMPLE_SECONDS (10),
#   AIGOV_BENCH_NAMESPACES (5) x AIGOV_BENCH_PER_NAMESPACE (10) budgets.
set -euo pipefail
export AIGOV_RUN="${AIGOV_BENCH_RUN:-/tmp/aigov-bench-mem}"
export AIGOV_ETCD_PORT=23795 AIGOV_ETCD_PEER_PORT=23805 AIGOV_APISERVER_PORT=16448
export AIGOV_MOTO_PORT=15005 AIGOV_BEDROCK_SIM_PORT=18085
source "$(dirname "${BASH_SOURCE[0]}")/../env/lib.sh"
cd "$AIGOV_REPO"
NAMESPACES="${AIGOV_BENCH_NAMESPACES:-5}" PER_NS="${AIGOV_BENCH_PER_NAMESPACE:-10}"
RATE="${AIGOV_BENCH_RATE:-5000}" LOAD_SECONDS="${AIGOV_BENCH_SECONDS:-180}"
SCALE="${AIGOV_BENCH_CALL_TIME_SCALE:-60}" SAMPLE_SECONDS="${AIGOV_BENCH_SAMPLE_SECONDS:-10}"
BASELINE="${AIGOV_BENCH_BASELINE_CONTROLLER:-}"
BUDGETS=$((NAMESPACES * PER_NS))
BASELINE_APISERVER_PORT=16449
# name -> ledger port, metrics port
declare -A LEDGER_PORT=([after]=17295 [before]=17296) METRICS_PORT=([after]=19295 [before]=19296)
RUNS=(after)
[[ -n "$BASELINE" ]] && RUNS+=(before)

# stop_started: what this script started itself, by PID, given time to stop on SIGTERM (the
# controllers flush, the apiserver drains); down.sh then stops the environment's servers and
# kills whatever is left (every PID is in the same directory).
stop_started() {
  local name pid
  for name in ledgerload-after ledgerload-before controller-after controller-before kube-apiserver-baseline; do
    [[ -f "$AIGOV_RUN/pids/$name" ]] || continue
    pid=$(cat "$AIGOV_RUN/pids/$name")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
}
trap 'stop_started; bash tests/env/down.sh --purge >/dev/null 2>&1 || true' EXIT
bash tests/env/down.sh --purge >/dev/null 2>&1 || true
bash tests/env/up.sh >/dev/null
source "$AIGOV_RUN/env.sh"
log "building release binaries"
claim_target_dir
cargo build --release --quiet -p aigov-controller -p aigov-bench
REL="$CARGO_TARGET_DIR/release"
declare -A BIN=([after]="$REL/aigov-controller" [before]="$BASELINE")
declare -A KUBECONFIGS=([after]="$KUBECONFIG" [before]="$AIGOV_RUN/kubeconfig-baseline")

# start_baseline_apiserver: a second kube-apiserver on the same etcd under its own prefix,
# with the same certificates, for the baseline controller's AIBudgets and Lease.
start_baseline_apiserver() {
  local pki="$AIGOV_RUN/pki" port=$BASELINE_APISERVER_PORT
  setsid "$KUBE_APISERVER" --advertise-address=127.0.0.1 --bind-address=127.0.0.1 --secure-port=$port \
    --etcd-servers="http://127.0.0.1:$AIGOV_ETCD_PORT" --etcd-prefix=/registry-baseline \
    --cert-dir="$AIGOV_RUN/apiserver-baseline" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --authorization-mode=RBAC \
    --service-account-issuer="https://127.0.0.1:$port/" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.0.1.0/24 --allow-privileged=true \
    --disable-admission-plugins=ServiceAccount --profiling=false \
    >"$AIGOV_RUN/logs/kube-apiserver-baseline.log" 2>&1 </dev/null &
  echo $! >"$AIGOV_RUN/pids/kube-apiserver-baseline"
  disown
  sed "s|127.0.0.1:$AIGOV_APISERVER_PORT|127.0.0.1:$port|" "$KUBECONFIG" >"${KUBECONFIGS[before]}"
  for _ in $(seq 1 400); do
    KUBECONFIG="${KUBECONFIGS[before]}" kubectl get --raw /readyz >/dev/null 2>&1 && return
    sleep 0.3
  done
  tail -n 30 "$AIGOV_RUN/logs/kube-apiserver-baseline.log" >&2
  die "baseline kube-apiserver not ready"
}

# apply_budgets KUBECONFIG: the CRDs (the main apiserver has them from up.sh) and the budgets.
apply_budgets() {
  KUBECONFIG="$1" kubectl apply --server-side --force-conflicts -f crds/yaml/ >/dev/null
  KUBECONFIG="$1" kubectl wait --for=condition=Established --timeout=60s crd/aibudgets.aigov.dev >/dev/null
  KUBECONFIG="$1" kubectl apply --server-side -f "$AIGOV_RUN/budgets.yaml" >/dev/null
  KUBECONFIG="$1" kubectl create namespace aigov-system >/dev/null 2>&1 || true
}

python3 - "$NAMESPACES" "$PER_NS" >"$AIGOV_RUN/budgets.yaml" <<'PY'
import sys
namespaces, per = int(sys.argv[1]), int(sys.argv[2])
for ns in range(namespaces):
    print(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: load-{ns}}}\n---")
    for b in range(per):
        print(f"apiVersion: aigov.dev/v1alpha1\nkind: AIBudget\nmetadata: {{name: b-{b}, namespace: load-{ns}}}\n"
              f"spec: {{limit: '{100000 + b}.00', thresholds: [50, 80, 100]}}\n---")
PY
if [[ -n "$BASELINE" ]]; then
  log "starting the baseline's kube-apiserver on :$BASELINE_APISERVER_PORT (same etcd, prefix /registry-baseline)"
  start_baseline_apiserver
fi
for run in "${RUNS[@]}"; do
  log "$run: applying $BUDGETS AIBudgets"
  apply_budgets "${KUBECONFIGS[$run]}"
done

metric() { curl -fsS "http://127.0.0.1:${METRICS_PORT[$1]}/metrics" | awk -v m="$2" '$1 == m {print int($2)}'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start_controller RUN: the controller of RUN, leader of its own Lease, PID in pids/.
start_controller() {
  local run="$1"
  log "$run: ${BIN[$run]}"
  KUBECONFIG="${KUBECONFIGS[$run]}" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL="$AIGOV_MOTO_ENDPOINT" \
    setsid "${BIN[$run]}" --role controller --identity "bench-memory-$run" --namespace aigov-system \
      --lease-name "aigov-bench-memory-$run" \
      --ledger-listen "127.0.0.1:${LEDGER_PORT[$run]}" --metrics-listen "127.0.0.1:${METRICS_PORT[$run]}" \
      --settle 500ms --alerts false >"$AIGOV_RUN/logs/controller-$run.log" 2>&1 </dev/null &
  PID[$run]=$!
  echo "${PID[$run]}" >"$AIGOV_RUN/pids/controller-$run"
  disown
}

declare -A PID LOAD_PID
for run in "${RUNS[@]}"; do start_controller "$run"; done
for run in "${RUNS[@]}"; do
  for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:${METRICS_PORT[$run]}/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  until [[ "$(metric "$run" aigov_status_writes_total || echo 0)" -ge "$BUDGETS" ]]; do
    kill -0 "${PID[$run]}" 2>/dev/null || { tail -n 20 "$AIGOV_RUN/logs/controller-$run.log" >&2; die "$run: controller exited"; }
    sleep 0.5
  done
  log "$run: leading, every status written once"
done

log "streaming $RATE records/s to each controller for ${LOAD_SECONDS}s, call time x$SCALE; RSS every ${SAMPLE_SECONDS}s"
samples="$AIGOV_RUN/samples.tsv"
: >"$samples"
# sample T: one line per run: run, seconds into the stream, records accepted, VmRSS (KiB),
# CPU (utime + stime, clock ticks).
sample() {
  for run in "${RUNS[@]}"; do
    printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$1" "$(cat "$AIGOV_RUN/progress-$run" 2>/dev/null || echo 0)" \
      "$(rss_kib "${PID[$run]}")" "$(cpu_ticks "${PID[$run]}")" >>"$samples"
  done
}
sample 0
started=$SECONDS
for run in "${RUNS[@]}"; do
  "$REL/ledgerload" --ledger "http://127.0.0.1:${LEDGER_PORT[$run]}" --namespaces "$NAMESPACES" \
    --per-namespace "$PER_NS" --rate "$RATE" --seconds "$LOAD_SECONDS" --call-time-scale "$SCALE" \
    --uuid-request-ids --progress "$AIGOV_RUN/progress-$run" --expected "$AIGOV_RUN/expected-$run.json" \
    >"$AIGOV_RUN/load-$run.json" 2>"$AIGOV_RUN/logs/ledgerload-$run.log" &
  LOAD_PID[$run]=$!
  echo "${LOAD_PID[$run]}" >"$AIGOV_RUN/pids/ledgerload-$run"
done
for ((next = SAMPLE_SECONDS; next < LOAD_SECONDS; next += SAMPLE_SECONDS)); do
  while (( SECONDS - started < next )); do sleep 0.2; done
  sample "$next"
done
for run in "${RUNS[@]}"; do wait "${LOAD_PID[$run]}"; done
sample "$((SECONDS - started))"

# Every call accepted is counted once (none dropped as a duplicate): the statuses' requests
# add up to what the load generator had accepted, once the last status writes are through.
declare -A COUNTED
for run in "${RUNS[@]}"; do
  accepted=$(cat "$AIGOV_RUN/progress-$run")
  for _ in $(seq 1 60); do
    COUNTED[$run]=$(KUBECONFIG="${KUBECONFIGS[$run]}" kubectl get aib -A -o json |
      python3 -c 'import json,sys; print(sum(i.get("status",{}).get("requests",0) for i in json.load(sys.stdin)["items"]))')
    [[ "${COUNTED[$run]}" == "$accepted" ]] && break
    sleep 1
  done
  log "$run: $accepted records accepted, ${COUNTED[$run]} counted in statuses; peak $(awk '/^VmHWM/ {print $2}' "/proc/${PID[$run]}/status") KiB"
done

log "summary"
python3 - "$AIGOV_RUN" "$RATE" "$SCALE" "$LOAD_SECONDS" "$BUDGETS" <<'PY'
import json, os, sys
run_dir, rate, scale, seconds, budgets = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
TICKS = os.sysconf("SC_CLK_TCK")
# The horizon holds 15 to 16 minute buckets of call time, so it is full 16 minutes of call time
# into the stream; steady from twice that, once every ID has been replaced by a newer one (the
# allocator has then reused the memory of every bucket forgotten once).
filled = 16 * 60 / scale
steady_from = 2 * filled

def samples():
    """Per run, (seconds into the stream, calls accepted, RSS MiB, CPU seconds) in order."""
    rows = {}
    for line in open(f"{run_dir}/samples.tsv"):
        run, t, calls, rss, cpu = line.split("\t")
        rows.setdefault(run, []).append((int(t), int(calls), int(rss) / 1024, int(cpu) / TICKS))
    return {r: rows[r] for r in ("after", "before") if r in rows}

def slope(points):
    """RSS growth in MiB per million calls, least squares of RSS on calls."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(p[1] for p in points) / n
    my = sum(p[2] for p in points) / n
    sxx = sum((p[1] - mx) ** 2 for p in points)
    sxy = sum((p[1] - mx) * (p[2] - my) for p in points)
    return sxy / sxx * 1e6 if sxx else float("nan")

def table(rows):
    """Every sample side by side (the runs were sampled at the same moments)."""
    runs = list(rows)
    print("t (s)\t" + "\t".join(f"{r} calls\t{r} RSS (MiB)" for r in runs))
    for i, first in enumerate(rows[runs[0]]):
        print(f"{first[0]}\t" + "\t".join(f"{rows[r][i][1]:,}\t{rows[r][i][2]:.1f}" for r in runs))

def report(run, pts):
    """One run's slopes, throughput and CPU; returns the steady-state slope."""
    load = json.load(open(f"{run_dir}/load-{run}.json"))
    whole = slope([p for p in pts if p[1] > 0])
    steady_pts = [p for p in pts if p[0] >= steady_from]
    steady = slope(steady_pts)
    cpu = (pts[-1][3] - pts[0][3]) / pts[-1][1] * 1e6
    print(f"{run}: RSS {pts[0][2]:.1f} -> {pts[-1][2]:.1f} MiB over {pts[-1][1]:,} calls; growth per million calls: "
          f"{whole:.1f} MiB over the whole stream, {steady:.1f} MiB in the steady state "
          f"(t >= {steady_from:.0f} s, {len(steady_pts)} samples)")
    print(f"{run}: {load['records']:,} records in {load['seconds']:.0f} s = {load['records_per_second']:,.0f}/s; "
          f"exchange p50 {load['exchange_p50_us'] / 1000:.2f} ms, p99 {load['exchange_p99_us'] / 1000:.2f} ms; "
          f"controller CPU {cpu:.1f} us per call")
    return steady

rows = samples()
if sum(1 for p in next(iter(rows.values())) if p[0] >= steady_from) < 2:
    print(f"(too short for a steady state: it needs two samples from {steady_from:.0f} s on; run longer)")
print(f"budgets: {budgets}; {rate} records/s offered per controller for {seconds} s; call time x{scale:g} "
      f"({seconds * scale / 60:.0f} minutes of call time; the 15-minute horizon is full after {filled:.0f} s)")
table(rows)
slopes = {run: report(run, pts) for run, pts in rows.items()}
print(f"the horizon holds the IDs of 15-16 minutes of call time: about {rate * 15.5 * 60 / scale:,.0f} per controller here "
      f"(at {rate} calls/s of real time, {rate * 15.5 * 60:,.0f})")
if "before" in slopes:
    a, b = slopes["after"], slopes["before"]
    print(f"before: about {b * 1.048576:.0f} bytes of RSS per call remembered")
    print(f"ratio after/before of the growth in the steady state: {a / b:.3f} "
          f"(before grows {b:.1f} MiB per million calls, after {a:.1f})")
PY
