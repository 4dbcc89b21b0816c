#!/usr/bin/env bash
# Brings up aigov's local environment on 127.0.0.1, all real servers:
#   etcd + kube-apiserver (envtest-style flags, RBAC, client-cert admin), the aigov CRDs,
#   moto (extended, see tests/env/moto/aigov_moto.py) and the Bedrock runtime simulator.
# Idempotent: a server already running (by its PID file) is left alone. Writes
#   $AIGOV_RUN/kubeconfig  and  $AIGOV_RUN/env.sh  (source it to point tools at the environment).
# Stop everything with tests/env/down.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$AIGOV_RUN"/{pki,logs,pids}
bash "$AIGOV_REPO/tests/env/tools.sh" all

running() { [[ -f "$AIGOV_RUN/pids/$1" ]] && kill -0 "$(cat "$AIGOV_RUN/pids/$1")" 2>/dev/null; }

# start NAME CMD... starts CMD detached, logging to logs/NAME.log, PID in pids/NAME.
start() {
  local name="$1"; shift
  if running "$name"; then log "$name already running (pid $(cat "$AIGOV_RUN/pids/$name"))"; return; fi
  setsid "$@" >"$AIGOV_RUN/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$AIGOV_RUN/pids/$name"
  log "started $name (pid $!)"
}

# wait_for NAME SECONDS CMD... polls CMD until it succeeds, or fails showing the server's log.
wait_for() {
  local name="$1" seconds="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then tail -n 30 "$AIGOV_RUN/logs/$name.log" >&2; die "$name exited during start-up"; fi
    if (( SECONDS > deadline )); then tail -n 30 "$AIGOV_RUN/logs/$name.log" >&2; die "$name not ready after ${seconds}s"; fi
    sleep 0.3
  done
}

# --- PKI: a CA, the apiserver's serving certificate, an admin client certificate, SA keys.
pki="$AIGOV_RUN/pki"
if [[ ! -f "$pki/admin.crt" ]]; then
  log "generating certificates in $pki"
  ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
  ec "$pki/ca.key"
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=aigov-local-ca" -days 3650 -out "$pki/ca.crt" 2>/dev/null
  ec "$pki/apiserver.key"
  openssl req -new -key "$pki/apiserver.key" -subj "/CN=kube-apiserver" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >"$pki/apiserver.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
  ec "$pki/admin.key"
  openssl req -new -key "$pki/admin.key" -subj "/O=system:masters/CN=aigov-admin" -out "$pki/admin.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$pki/admin.ext"
  openssl x509 -req -in "$pki/admin.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/admin.ext" -out "$pki/admin.crt" 2>/dev/null
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
fi

# --- etcd
start etcd "$ETCD" --name aigov --data-dir "$AIGOV_RUN/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "aigov=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# --- kube-apiserver, with the flags controller-runtime's envtest uses
start kube-apiserver "$KUBE_APISERVER" \
  --advertise-address=127.0.0.1 --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" --cert-dir="$AIGOV_RUN/apiserver" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" --authorization-mode=RBAC \
  --service-account-issuer="https://127.0.0.1:$APISERVER_PORT/" \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
  --disable-admission-plugins=ServiceAccount --profiling=false
kubeconfig="$AIGOV_RUN/kubeconfig"
cat >"$kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: aigov-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $pki/ca.crt
users:
- name: aigov-admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: aigov-local
  context: {cluster: aigov-local, user: aigov-admin, namespace: default}
current-context: aigov-local
KUBECONFIG
wait_for kube-apiserver 120 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
  "https://127.0.0.1:$APISERVER_PORT/readyz"

# --- the aigov CRDs
KUBECONFIG="$kubeconfig" "$KUBECTL" apply --server-side --force-conflicts -f "$AIGOV_REPO/crds/yaml/" >&2
KUBECONFIG="$kubeconfig" "$KUBECTL" wait --for=condition=Established --timeout=60s \
  crd/aibudgets.aigov.dev crd/aimodelprices.aigov.dev >&2

# --- moto, extended
start moto "$MOTO_PYTHON" "$AIGOV_REPO/tests/env/moto/aigov_moto.py" --port "$MOTO_PORT"
wait_for moto 60 curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/data.json"

# --- the Bedrock runtime simulator
log "building the Bedrock simulator"
claim_target_dir
cargo build --quiet --manifest-path "$AIGOV_REPO/Cargo.toml" -p aigov-bedrock-sim
# The simulator checks the signatures of the keys the tests and the demo sign with, and writes
# Bedrock's model invocation logs through moto (started above) as its logging configuration says.
start bedrock-sim "$CARGO_TARGET_DIR/debug/aigov-bedrock-sim" --listen "127.0.0.1:$BEDROCK_SIM_PORT" \
  --sigv4-secret testing=testing --sigv4-secret aigov-gateway=gateway-secret \
  --aws-endpoint "http://127.0.0.1:$MOTO_PORT"
wait_for bedrock-sim 30 curl -sf "http://127.0.0.1:$BEDROCK_SIM_PORT/_sim/health"

cat >"$AIGOV_RUN/env.sh" <<ENV
# Written by tests/env/up.sh: source it to talk to aigov's local environment.
export AIGOV_RUN="$AIGOV_RUN"
export KUBECONFIG="$kubeconfig"
export AIGOV_KUBECTL="$KUBECTL"
export AIGOV_TOFU="$TOFU"
export AIGOV_TOFU_VERSION="$TOFU_VERSION"
export AIGOV_KUBE_VERSION="$KUBE_VERSION"
export AIGOV_MOTO_PYTHON="$MOTO_PYTHON"
export AIGOV_LLM_SDK_PYTHON="$LLM_SDK_PYTHON"
export AIGOV_PROMETHEUS_DIR="$PROMETHEUS_DIR"
export AIGOV_KREW="$KREW"
export AIGOV_HELM="$HELM"
export AIGOV_OPENAI_JS_DIR="$OPENAI_JS_DIR"
export AIGOV_MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export AIGOV_BEDROCK_SIM_ENDPOINT="http://127.0.0.1:$BEDROCK_SIM_PORT"
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
# aigov's own command-line tools (kubectl-aigov), installed there by tests/demo.sh.
export PATH="$AIGOV_RUN/bin:$KUBE_DIR/bin:$TOFU_DIR/bin:\$PATH"
ENV
mkdir -p "$AIGOV_RUN/bin"
log "environment up: source $AIGOV_RUN/env.sh"
