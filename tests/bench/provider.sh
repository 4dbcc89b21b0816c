#!/usr/bin/env bash
# The provider benchmark: start-up time of terraform-provider-aigov (spawn to handshake line,
# AutoMTLS certificate generated), and OpenTofu's wall time to apply, plan (no changes), and
# destroy a configuration of 110 resources against moto and the local kube-apiserver.
# Usage: bash tests/bench/provider.sh   (starts and stops its own environment)
set -euo pipefail
export AIGOV_RUN="${AIGOV_BENCH_RUN:-/tmp/aigov-bench-provider}"
export AIGOV_ETCD_PORT=23794 AIGOV_ETCD_PEER_PORT=23804 AIGOV_APISERVER_PORT=16447
export AIGOV_MOTO_PORT=15004 AIGOV_BEDROCK_SIM_PORT=18084
source "$(dirname "${BASH_SOURCE[0]}")/../env/lib.sh"
cd "$AIGOV_REPO"
STARTS="${AIGOV_BENCH_STARTS:-20}" COUNT="${AIGOV_BENCH_COPIES:-10}"

# The trap names the script by absolute path: the benchmark later works in another directory.
trap 'bash "$AIGOV_REPO/tests/env/down.sh" --purge >/dev/null 2>&1 || true' EXIT
bash tests/env/down.sh --purge >/dev/null 2>&1 || true
bash tests/env/up.sh >/dev/null
source "$AIGOV_RUN/env.sh"
PROFILE="${AIGOV_BENCH_PROFILE:-release}"   # debug: skip the release build
log "building the $PROFILE provider"
if [[ "$PROFILE" == release ]]; then cargo build --release --quiet -p terraform-provider-aigov; else cargo build --quiet -p terraform-provider-aigov; fi
BIN="$CARGO_TARGET_DIR/$PROFILE/terraform-provider-aigov"

log "start-up: $STARTS starts, spawn to handshake line"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-521 -nodes -days 1 -subj /CN=localhost \
  -keyout "$AIGOV_RUN/client.key" -out "$AIGOV_RUN/client.pem" 2>/dev/null
python3 - "$BIN" "$STARTS" "$AIGOV_RUN/client.pem" <<'PY'
import os, statistics, subprocess, sys, time
binary, starts, pem = sys.argv[1], int(sys.argv[2]), open(sys.argv[3]).read()
env = dict(os.environ, TF_PLUGIN_MAGIC_COOKIE="d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
           PLUGIN_PROTOCOL_VERSIONS="5,6", PLUGIN_CLIENT_CERT=pem)
times = []
for _ in range(starts):
    t0 = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline()
    times.append((time.perf_counter() - t0) * 1000)
    assert line.startswith(b"1|6|tcp|127.0.0.1:"), line
    p.kill(); p.wait()
times.sort()
print(f"provider start-up to handshake: median {statistics.median(times):.1f} ms, p90 {times[int(len(times)*0.9)-1]:.1f} ms, max {times[-1]:.1f} ms ({starts} starts)")
PY

WORK="$AIGOV_RUN/tf"
TF_CLI_CONFIG_FILE="$(bash tests/env/provider-mirror.sh "$BIN" "$WORK")"
export TF_CLI_CONFIG_FILE TF_IN_AUTOMATION=1
python3 - "$COUNT" "$AIGOV_MOTO_ENDPOINT" "$KUBECONFIG" >"$WORK/main.tf" <<'PY'
import sys
count, moto, kubeconfig = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print(f'''terraform {{
  required_providers {{
    aigov = {{ source = "aigov/aigov", version = "0.1.0" }}
  }}
}}
provider "aigov" {{
  region = "us-east-1"
  endpoints {{
    budgets = "{moto}"
    cloudwatch = "{moto}"
    logs = "{moto}"
    sns = "{moto}"
    sts = "{moto}"
  }}
  default_tags {{ tags = {{ bench = "provider" }} }}
  kubernetes {{ config_path = "{kubeconfig}" }}
}}''')
for i in range(count):
    print(f'''
resource "aigov_alert_channel" "c{i}" {{
  name = "bench-{i}"
  subscription {{
    protocol = "email"
    endpoint = "team{i}@example.com"
  }}
}}
resource "aigov_log_group" "l{i}" {{
  name = "/aigov/bench/{i}"
  retention_in_days = 30
}}
resource "aigov_budget" "b{i}" {{
  name = "bench-{i}"
  amount = {1000 + i}.50
  time_unit = "MONTHLY"
  notification {{
    notification_type = "ACTUAL"
    threshold = 80
    alert_channel_arn = aigov_alert_channel.c{i}.arn
  }}
}}
resource "aigov_pricing_override" "p{i}" {{
  name = "bench-{i}"
  model = "bench.model-{i}-v1:0"
  input = 1.25
  output = 5.5
}}''')
    for j in range(7):
        print(f'''resource "aigov_alarm" "a{i}_{j}" {{
  name = "bench-{i}-{j}"
  threshold = {j + 1}
  preset {{
    metric = "spend"
    namespace = "team-{i}"
    budget = "budget-{j}"
  }}
  alarm_actions = [aigov_alert_channel.c{i}.arn]
}}''')
PY
resources=$(grep -c '^resource' "$WORK/main.tf")
cd "$WORK"
"$TOFU" init -input=false -no-color >/dev/null
timed() { local start; start=$(date +%s.%N); "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log"; exit 1; }; python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')"; }
apply=$(timed "$TOFU" apply -auto-approve -input=false -no-color)
plan=$(timed "$TOFU" plan -input=false -no-color -detailed-exitcode)
grep -q "No changes" "$WORK/last.log" || { cat "$WORK/last.log"; die "the plan after apply is not empty"; }
refresh_only=$(timed "$TOFU" plan -refresh=false -input=false -no-color)
destroy=$(timed "$TOFU" destroy -auto-approve -input=false -no-color)
echo "OpenTofu $AIGOV_TOFU_VERSION, $PROFILE provider, $resources resources against moto + kube-apiserver (parallelism 10):"
echo "  apply ${apply} s, plan with refresh (no changes) ${plan} s, plan without refresh ${refresh_only} s, destroy ${destroy} s"
