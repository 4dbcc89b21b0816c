#!/usr/bin/env bash
# The README's first command: the governed loop on this machine, no cloud account.
#   - brings up the local environment (kube-apiserver + etcd, moto, the Bedrock simulator),
#     building what is missing;
#   - starts aigov (controller + metering gateway in one process) against it;
#   - applies the example budgets and price, and two pods whose IPs identify the callers;
#   - runs the sample workload (boto3, unchanged but for AWS_ENDPOINT_URL_BEDROCK_RUNTIME)
#     until the research team's daily budget refuses it;
#   - shows what a team lead and the platform team look at: kubectl get/describe, the alert
#     that reached SNS, the Prometheus metrics.
# Safe to re-run. Tear down with: bash tests/env/down.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env/lib.sh"
cd "$AIGOV_REPO"

step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }

step "Bringing up the local environment (first run builds kube-apiserver, etcd, OpenTofu, moto)"
bash tests/env/up.sh
source "$AIGOV_RUN/env.sh"
export AWS_ENDPOINT_URL="$AIGOV_MOTO_ENDPOINT"

step "Building aigov"
cargo build --quiet -p aigov-controller
AIGOV_BIN="$CARGO_TARGET_DIR/debug/aigov-controller"

step "Alert channels in (emulated) AWS: the SNS topics the examples name, each with an SQS queue to read alerts from"
"$AIGOV_MOTO_PYTHON" - <<'PY'
import boto3
sns, sqs = boto3.client("sns"), boto3.client("sqs")
for name in ("ai-spend", "ai-oncall"):
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    print(f"    {topic}")
PY

step "Applying the example budgets and price override"
kubectl create namespace aigov-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f examples/budgets/ -f examples/prices/

step "Two workloads (pods carry their IPs; the gateway knows callers by IP, never by a header)"
demo_pod() { # namespace name serviceaccount ip
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $2, namespace: $1, labels: {app: $2}}
spec:
  serviceAccountName: $3
  automountServiceAccountToken: false
  containers: [{name: app, image: example.invalid/app:1}]
YAML
  kubectl patch pod -n "$1" "$2" --subresource=status --type=merge \
    -p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$4\",\"podIPs\":[{\"ip\":\"$4\"}]}}" >/dev/null
  echo "    pod $1/$2 (serviceAccount $3) at $4"
}
demo_pod team-chat chat-api-0 chat-api 127.0.0.21
demo_pod team-research notebook-0 default 127.0.0.22

step "Starting aigov (controller + metering gateway), pointed at the Bedrock simulator"
if [[ -f "$AIGOV_RUN/pids/aigov" ]] && kill -0 "$(cat "$AIGOV_RUN/pids/aigov")" 2>/dev/null; then
  kill "$(cat "$AIGOV_RUN/pids/aigov")"; sleep 1
fi
AWS_ACCESS_KEY_ID=aigov-gateway AWS_SECRET_ACCESS_KEY=gateway-secret AWS_REGION=us-east-1 \
  setsid "$AIGOV_BIN" --role all --identity aigov-demo --namespace aigov-system \
    --gateway-listen "127.0.0.1:$GATEWAY_PORT" --ledger-listen "127.0.0.1:$LEDGER_PORT" \
    --metrics-listen "127.0.0.1:$METRICS_PORT" --controller-endpoints "http://127.0.0.1:$LEDGER_PORT" \
    --bedrock-endpoint "$AIGOV_BEDROCK_SIM_ENDPOINT" --lease-duration 5s --settle 500ms \
    >"$AIGOV_RUN/logs/aigov.log" 2>&1 </dev/null &
echo $! >"$AIGOV_RUN/pids/aigov"
for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null || { tail -n 30 "$AIGOV_RUN/logs/aigov.log"; die "aigov did not become ready"; }
echo "    gateway http://127.0.0.1:$GATEWAY_PORT   metrics http://127.0.0.1:$METRICS_PORT/metrics   (pid $(cat "$AIGOV_RUN/pids/aigov"))"

workload() { # ip model calls max_tokens prompt
  AWS_ENDPOINT_URL_BEDROCK_RUNTIME="http://127.0.0.1:$GATEWAY_PORT" AWS_ENDPOINT_URL= \
  AWS_ACCESS_KEY_ID=workload AWS_SECRET_ACCESS_KEY=workload AWS_REGION=us-east-1 \
  AIGOV_DEMO_SOURCE_IP="$1" PROMPT="$5" \
    "$AIGOV_MOTO_PYTHON" examples/workload/chat.py "$2" "$3" "$4" | sed 's/^/    /'
}

step "team-chat's service calls Claude 3.5 Sonnet (its budget allows Claude 3.x and Nova)"
workload 127.0.0.21 anthropic.claude-3-5-sonnet-20240620-v1:0 3 1024 "Draft a reply [sim:output_tokens=600]"
step "team-chat tries Claude Opus 4, which its budget does not allow"
workload 127.0.0.21 us.anthropic.claude-opus-4-20250514-v1:0 1 256 "Hi" || true
step "team-research's notebook runs long Sonnet jobs until its \$5.00 daily budget stops it"
workload 127.0.0.22 anthropic.claude-3-5-sonnet-20240620-v1:0 60 8192 "Analyse the dataset [sim:output_tokens=8000]"

sleep 2
step "kubectl get aib -A"
kubectl get aib -A
step "kubectl describe aib -n team-research research-daily"
kubectl describe aib -n team-research research-daily | sed -n '/^Status:/,$p'
step "Alerts delivered to the ai-spend SNS topic (read from its SQS inbox)"
"$AIGOV_MOTO_PYTHON" - <<'PY'
import boto3
sqs = boto3.client("sqs")
url = sqs.get_queue_url(QueueName="ai-spend-inbox")["QueueUrl"]
seen = 0
for _ in range(5):
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    for m in messages:
        seen += 1
        print("    " + m["Body"].splitlines()[0])
print(f"    ({seen} alert(s))")
PY
step "Prometheus metrics (excerpt)"
curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | grep -E '^aigov_(budget_spent_usd|gateway_requests_total)' | sed 's/^/    /'

cat <<MSG

aigov keeps running with the environment. Explore further:
  source $AIGOV_RUN/env.sh
  kubectl describe aib -n team-chat chat-monthly
  kubectl annotate aib -n team-research research-daily aigov.dev/extension="2.00 deadline"   # a temporary extension
  kubectl get events.events.k8s.io -A
  tail -f $AIGOV_RUN/logs/aigov.log
Tear down:
  bash tests/env/down.sh            # stop every server by PID (aigov included)
  bash tests/env/down.sh --purge    # ...and delete its state
MSG
