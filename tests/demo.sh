#!/usr/bin/env bash
# The README's first command: the governed loop on this machine, no cloud account, no cluster.
#   1. brings up the local environment (kube-apiserver + etcd, moto, the Bedrock simulator),
#      building what is missing;
#   2. builds aigov, installs its CRDs and kubectl-aigov, applies the platform team's policy
#      (examples/terraform/) with OpenTofu and the teams' budgets (examples/budgets/) with kubectl;
#   3. starts aigov (controller + metering gateway) against it;
#   4. runs the sample workload (examples/workload/, aws-sdk-bedrockruntime, unchanged but for
#      AWS_ENDPOINT_URL_BEDROCK_RUNTIME) as two pods until the research team's $5.00 daily
#      budget refuses it;
#   5. shows what people look at: kubectl get/describe with the Events, the alerts that reached
#      SNS, and the reports (kubectl aigov report, top, compare, export, prices, reconcile), with a
#      call made around the gateway caught in Bedrock's invocation logs.
# Safe to re-run. Tear down with: bash tests/env/down.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env/lib.sh"
cd "$AIGOV_REPO"

step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
indent() { sed 's/^/    /'; }

step "1/9 Bringing up the local environment (the first run builds kube-apiserver, etcd, OpenTofu and moto: several minutes)"
bash tests/env/up.sh
source "$AIGOV_RUN/env.sh"
export AWS_ENDPOINT_URL="$AIGOV_MOTO_ENDPOINT"

step "2/9 Building aigov: controller + gateway, kubectl-aigov, the Terraform provider, the sample workload"
claim_target_dir
cargo build --quiet -p aigov-controller -p kubectl-aigov -p terraform-provider-aigov -p aigov-example-workload
AIGOV_BIN="$CARGO_TARGET_DIR/debug/aigov-controller"
WORKLOAD_BIN="$CARGO_TARGET_DIR/debug/chat"
ln -sfn "$CARGO_TARGET_DIR/debug/kubectl-aigov" "$AIGOV_RUN/bin/kubectl-aigov"
echo "    kubectl-aigov installed in $AIGOV_RUN/bin (on PATH after: source $AIGOV_RUN/env.sh)"

step "3/9 Installing the CRDs (AIBudget, ClusterAIBudget, AIBudgetTemplate, AIModelPrice)"
kubectl apply -f crds/yaml/ | indent
kubectl wait --for condition=established --timeout=30s crd/aibudgets.aigov.dev crd/aimodelprices.aigov.dev >/dev/null

step "4/9 The platform team's policy with OpenTofu (examples/terraform/): alert channels, usage log group, AWS budget, alarm, a pricing override"
# An SQS queue subscribed to the alert channel lets this script show the alerts that arrive.
inbox_arn=$("$AIGOV_MOTO_PYTHON" - <<'PY'
import boto3
sqs = boto3.client("sqs")
url = sqs.create_queue(QueueName="aigov-finops-inbox")["QueueUrl"]
print(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
PY
)
workdir="$AIGOV_RUN/terraform"
mkdir -p "$workdir"
cp examples/terraform/*.tf "$workdir/"
export TF_CLI_CONFIG_FILE="$(bash tests/env/provider-mirror.sh "$CARGO_TARGET_DIR/debug/terraform-provider-aigov" "$AIGOV_RUN/provider-mirror")"
cat >"$workdir/terraform.tfvars" <<TFVARS
aws_endpoint          = "$AIGOV_MOTO_ENDPOINT"
kubeconfig            = "$KUBECONFIG"
alert_inbox_queue_arn = "$inbox_arn"
TFVARS
# The provider is built here, so its checksum changes with the code: forget the last one.
rm -rf "$workdir/.terraform.lock.hcl" "$workdir/.terraform/providers"
tofu -chdir="$workdir" init -input=false -no-color >"$AIGOV_RUN/logs/tofu-init.log" || { cat "$AIGOV_RUN/logs/tofu-init.log"; die "tofu init failed"; }
echo "$ tofu apply"
tofu -chdir="$workdir" apply -auto-approve -input=false -no-color >"$AIGOV_RUN/logs/tofu-apply.log" 2>&1 \
  || { cat "$AIGOV_RUN/logs/tofu-apply.log"; die "tofu apply failed"; }
grep -E ': (Creation|Modifications|Destruction) complete|^Apply complete|^No changes|^[a-z_]+ = "' "$AIGOV_RUN/logs/tofu-apply.log" | indent

step "5/9 The teams' budgets, the engineering-wide cap over them (examples/budgets/) and a negotiated price (examples/prices/)"
kubectl create namespace aigov-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f examples/budgets/ -f examples/prices/ | indent

step "6/9 Two workloads (pods carry their IPs; the gateway knows callers by IP, never by a header)"
demo_pod() { # namespace name serviceaccount app ip
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $2, namespace: $1, labels: {app: $4}}
spec:
  serviceAccountName: $3
  automountServiceAccountToken: false
  containers: [{name: app, image: example.invalid/app:1}]
YAML
  kubectl patch pod -n "$1" "$2" --subresource=status --type=merge \
    -p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$5\",\"podIPs\":[{\"ip\":\"$5\"}]}}" >/dev/null
  echo "    pod $1/$2 (workload $4, serviceAccount $3) at $5"
}
demo_pod team-chat chat-api-0 chat-api chat-api 127.0.0.21
demo_pod team-research notebook-0 default notebook 127.0.0.22

step "7/9 Starting aigov (controller + metering gateway in one process), pointed at the Bedrock simulator"
if [[ -f "$AIGOV_RUN/pids/aigov" ]] && kill -0 "$(cat "$AIGOV_RUN/pids/aigov")" 2>/dev/null; then
  kill "$(cat "$AIGOV_RUN/pids/aigov")"; sleep 1
fi
AWS_ACCESS_KEY_ID=aigov-gateway AWS_SECRET_ACCESS_KEY=gateway-secret AWS_REGION=us-east-1 \
  setsid "$AIGOV_BIN" --role all --identity aigov-demo --namespace aigov-system \
    --gateway-listen "127.0.0.1:$GATEWAY_PORT" --ledger-listen "127.0.0.1:$LEDGER_PORT" \
    --metrics-listen "127.0.0.1:$METRICS_PORT" --controller-endpoints "http://127.0.0.1:$LEDGER_PORT" \
    --bedrock-endpoint "$AIGOV_BEDROCK_SIM_ENDPOINT" --mantle-endpoint "$AIGOV_BEDROCK_SIM_ENDPOINT" \
    --lease-duration 5s --settle 500ms \
    --emf-log-group /aigov/usage \
    --invocation-log-group /aigov/bedrock-invocations --invocation-log-lag 5s --invocation-log-interval 1s \
    >"$AIGOV_RUN/logs/aigov.log" 2>&1 </dev/null &
echo $! >"$AIGOV_RUN/pids/aigov"
for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null || { tail -n 30 "$AIGOV_RUN/logs/aigov.log"; die "aigov did not become ready"; }
echo "    gateway http://127.0.0.1:$GATEWAY_PORT   metrics http://127.0.0.1:$METRICS_PORT/metrics   (pid $(cat "$AIGOV_RUN/pids/aigov"))"

# The workload as pod $1 would run it: only the endpoint differs from plain Bedrock.
# Each call is tagged with request metadata: feature (FEATURE) and user.
workload() { # pod-ip pod-label model calls max_tokens prompt
  AWS_ENDPOINT_URL_BEDROCK_RUNTIME="http://127.0.0.1:$GATEWAY_PORT" AWS_ENDPOINT_URL= \
  AWS_ACCESS_KEY_ID=workload AWS_SECRET_ACCESS_KEY=workload AWS_REGION=us-east-1 \
  AIGOV_DEMO_SOURCE_IP="$1" PROMPT="$6" FEATURE="${FEATURE:-chat}" \
    "$WORKLOAD_BIN" "$3" "$4" "$5" | sed "s|^|    [$2] |"
}
now_ms() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }

step "8/9 The workloads call Bedrock through the gateway"
echo "    team-chat's chat-api answers with Claude 3.5 Sonnet while team-research's notebook runs long"
echo "    Sonnet jobs until its \$5.00 daily budget stops it; then chat-api moves to Claude 3.5 Haiku"
echo "    (priced by the Terraform override) and tries Claude Opus 4, which its budget does not allow."
started=$(now_ms)
FEATURE=dataset-analysis workload 127.0.0.22 team-research/notebook-0 anthropic.claude-3-5-sonnet-20240620-v1:0 60 8192 \
  "Analyse the dataset [sim:output_tokens=8000]" &
research=$!
FEATURE=reply-drafts workload 127.0.0.21 team-chat/chat-api-0 anthropic.claude-3-5-sonnet-20240620-v1:0 4 1024 "Draft a reply [sim:output_tokens=600]"
switched=$(now_ms)
FEATURE=reply-drafts workload 127.0.0.21 team-chat/chat-api-0 anthropic.claude-3-5-haiku-20241022-v1:0 3 1024 "Draft a reply [sim:output_tokens=600]"
FEATURE=summaries workload 127.0.0.21 team-chat/chat-api-0 anthropic.claude-3-5-haiku-20241022-v1:0 3 1024 "Summarise the thread [sim:output_tokens=300]"
workload 127.0.0.21 team-chat/chat-api-0 us.anthropic.claude-opus-4-20250514-v1:0 1 256 "Hi" || true
# The same pod with the OpenAI Python SDK, pointed at the gateway by its base URL (bedrock-mantle).
OPENAI_BASE_URL="http://127.0.0.1:$GATEWAY_PORT/v1" OPENAI_API_KEY=workload-key "$AIGOV_LLM_SDK_PYTHON" - <<'PY' | sed "s|^|    [team-chat/chat-api-0] |"
import httpx2, openai
client = openai.OpenAI(http_client=httpx2.Client(transport=httpx2.HTTPTransport(local_address="127.0.0.21")), max_retries=0)
out = client.chat.completions.create(model="openai.gpt-oss-120b", max_completion_tokens=256,
                                     messages=[{"role": "user", "content": "Summarise [sim:output_tokens=120]"}])
print(f"OpenAI SDK chat.completions openai.gpt-oss-120b: {out.usage.prompt_tokens} in, {out.usage.completion_tokens} out (metered by aigov)")
PY
wait "$research"
# Status is written within a second; usage records reach CloudWatch Logs within a second or two.
sleep 3

# A laptop with team-chat's role calls Bedrock straight, around the gateway (boto3, as any
# script would): Bedrock's invocation logs show it, signed by a session of the role the namespace
# names, with no aigov stamp.
kubectl annotate namespace team-chat aigov.dev/iam-role=arn:aws:iam::123456789012:role/team-chat-app --overwrite >/dev/null
AWS_ACCESS_KEY_ID=laptop AWS_SECRET_ACCESS_KEY=laptop "$AIGOV_MOTO_PYTHON" tests/e2e/bypass_boto3.py \
  "$AIGOV_MOTO_ENDPOINT" "$AIGOV_BEDROCK_SIM_ENDPOINT" arn:aws:iam::123456789012:role/team-chat-app \
  anthropic.claude-3-5-haiku-20241022-v1:0 1 >/dev/null
echo "    [laptop] boto3 Converse straight to Bedrock with team-chat's role (around the gateway)"
# The controller reads the invocation logs 5 s behind the present (--invocation-log-lag).
sleep 8

step "9/9 What people look at"
echo
show kubectl get aib -A
echo
echo "The engineering-wide cap (a ClusterAIBudget over both teams' namespaces): every call above counted once here too:"
show kubectl get caib
show kubectl describe caib engineering | sed -n '/^  Top Namespaces:/,/^  Top Workloads:/p'
echo
echo "A new team: label its namespace for the standard template (examples/budgets/template.yaml),"
echo "with its own limit in an annotation, and the controller stamps its budget within seconds:"
kubectl create namespace team-ml --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl annotate namespace team-ml aigov.dev/budget-limit=400.00 --overwrite >/dev/null
show kubectl label namespace team-ml aigov.dev/budget-template=standard --overwrite
for _ in $(seq 1 50); do kubectl get aib -n team-ml team-monthly >/dev/null 2>&1 && break; sleep 0.2; done
# The template's status names the overridden namespaces (others may match it on a shared cluster).
for _ in $(seq 1 100); do
  [[ "$(kubectl get aibt team-standard -o jsonpath='{.status.overridden}')" == *team-ml* ]] && break
  sleep 0.2
done
show kubectl get aib -n team-ml
show kubectl get aibt
echo
show kubectl describe aib -n team-research research-daily | sed -n '/^Status:/,$p'
echo
echo "Alerts delivered to the aigov-finops SNS topic (read from the SQS queue subscribed to it):"
"$AIGOV_MOTO_PYTHON" - <<'PY'
import boto3
sqs = boto3.client("sqs")
url = sqs.get_queue_url(QueueName="aigov-finops-inbox")["QueueUrl"]
seen = 0
for _ in range(5):
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    for m in messages:
        seen += 1
        for n, line in enumerate(m["Body"].splitlines()):
            print(("  - " if n == 0 else "    ") + line)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
print(f"    ({seen} alert(s) this run; each threshold alerts once per period, so a re-run adds only new ones)")
PY
echo
show kubectl aigov report -A
echo
show kubectl aigov top -A --window 10m
echo
echo "Who inside the workloads spent it: the calls' request metadata (Converse requestMetadata):"
show kubectl aigov report -A --by feature
echo
echo "Limits per end user (spec.limitPerValue): each user of chat-api may spend \$2.00 a month:"
"$AIGOV_MOTO_PYTHON" - "$(kubectl get aib -n team-chat chat-monthly -o json)" <<'PY'
import json, sys
for k in json.loads(sys.argv[1])["status"].get("valueLimits", []):
    print(f"  {k['key']}: {k['values']} tracked this period, {k['atLimit']} at their ${k['limit']} limit")
    for v in k.get("top", []):
        print(f"    {v['value']:<10} ${v['spent']}")
PY
echo
echo "What changed when chat-api moved from Sonnet to Haiku (usage records, this run):"
show kubectl aigov compare -n team-chat --a "$started..$switched" --b "$switched..now"
echo
show kubectl aigov export -A --from "$started" | head -n 4
echo "    ..."
echo
period_start=$(kubectl get aib -n team-research research-daily -o jsonpath='{.status.periodStart}')
status_spent=$(kubectl get aib -n team-research research-daily -o jsonpath='{.status.spent}')
export_total=$(kubectl aigov export -n team-research --budget research-daily --from "$period_start" -o json \
  | "$AIGOV_MOTO_PYTHON" -c 'import decimal, json, sys; print(sum((decimal.Decimal(r["cost_usd"]) for r in json.load(sys.stdin)), decimal.Decimal(0)))')
if "$AIGOV_MOTO_PYTHON" -c "import decimal, sys; sys.exit(decimal.Decimal('$export_total') != decimal.Decimal('$status_spent'))"; then
  echo "The usage records of research-daily this period add up to \$$export_total: the status's spent, to the micro-dollar (they agree)."
else
  echo "The usage records of research-daily this period add up to \$$export_total but its status says \$$status_spent (they DISAGREE)."
fi
echo
echo "The price chat-api paid for Claude 3.5 Haiku, and where it comes from (the Terraform override), and"
echo "what a model nothing prices would cost before anyone calls it:"
show kubectl aigov prices anthropic.claude-3-5-haiku-20241022-v1:0 | indent
show kubectl aigov prices arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/new-team-app | sed -n '1,4p' | indent
echo
echo "Bedrock's own records against the ledger: every call through the gateway matched, and the"
echo "laptop's call found, its principal mapped to team-chat by the namespace's aigov.dev/iam-role:"
show kubectl aigov reconcile -A --invocation-log-group /aigov/bedrock-invocations --from "$started" | indent
show kubectl get events -n team-chat --field-selector reason=BypassDetected -o custom-columns=TYPE:.type,REASON:.reason,NOTE:.message --no-headers | head -n 2 | indent
echo
echo "Prometheus (excerpt):"
curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | grep -E '^aigov_(budget_spent_usd|budget_limit_usd|refused_requests_total)\{' | indent

cat <<MSG

aigov keeps running with the environment. Explore further:
  source $AIGOV_RUN/env.sh
  kubectl aigov report -n team-chat                # one namespace; -o json for scripts
  kubectl aigov top -A --watch                     # live spend rate by workload
  kubectl aigov export -A --from -1h -o json       # usage records (CSV by default)
  kubectl aigov prices MODEL --service-tier flex   # any model's price and where it comes from
  kubectl aigov reconcile -A --invocation-log-group /aigov/bedrock-invocations   # the ledger against Bedrock's own records
  kubectl describe aib -n team-chat chat-monthly
  kubectl annotate aib -n team-research research-daily aigov.dev/extension="2.00 deadline"   # a temporary extension
  kubectl get events.events.k8s.io -A
  tofu -chdir=$workdir plan                        # the platform team's policy (no changes)
  curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep ^aigov_   # what examples/grafana/ charts
  tail -f $AIGOV_RUN/logs/aigov.log
Tear down:
  bash tests/env/down.sh            # stop every server by PID (aigov included)
  bash tests/env/down.sh --purge    # ...and delete its state
MSG
