#!/usr/bin/env bash
# The README's first command: brings up aigov's local environment (building what is missing)
# and shows what works today: the AIBudget/AIModelPrice API in a real kube-apiserver, the
# API server refusing a bad budget, and the Bedrock simulator answering a real SDK (boto3).
# Safe to re-run. Tear down with: bash tests/env/down.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env/lib.sh"
cd "$AIGOV_REPO"

step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }

step "Bringing up the local environment (first run builds kube-apiserver, etcd, OpenTofu, moto)"
bash tests/env/up.sh
source "$AIGOV_RUN/env.sh"

step "Applying the example budgets and price override"
kubectl apply -f examples/budgets/ -f examples/prices/

step "kubectl get aib -A"
kubectl get aib -A
step "kubectl get aimp"
kubectl get aimp

step "A budget with thresholds out of order is refused by the API server:"
printf 'apiVersion: aigov.dev/v1alpha1\nkind: AIBudget\nmetadata: {name: broken, namespace: team-chat}\nspec: {limit: "10", thresholds: [80, 50]}\n' \
  | kubectl apply -f - 2>&1 | sed 's/^/    /' || true

step "The Bedrock simulator answering boto3 (Converse, ConverseStream, InvokeModel, streaming, a throttle)"
"$AIGOV_MOTO_PYTHON" tests/bedrock-sim/boto3_client.py "$AIGOV_BEDROCK_SIM_ENDPOINT"

cat <<MSG

Explore further (the environment keeps running):
  source $AIGOV_RUN/env.sh
  kubectl describe aib -n team-chat chat-monthly
  kubectl explain aibudget.spec.enforcement
  curl -s $AIGOV_BEDROCK_SIM_ENDPOINT/_sim/requests | python3 -m json.tool
  curl -s $AIGOV_MOTO_ENDPOINT/moto-api/data.json | python3 -m json.tool | head
Tear down:
  bash tests/env/down.sh            # stop every server by PID
  bash tests/env/down.sh --purge    # ...and delete its state
MSG
