#!/usr/bin/env bash
# Stops every server tests/env/up.sh started, by PID. With --purge, also deletes the
# environment's state (etcd data, certificates, logs) so the next up starts clean.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for pidfile in "$AIGOV_RUN"/pids/*; do
  [[ -f "$pidfile" ]] || continue
  name="$(basename "$pidfile")" pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    log "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
done
if [[ "${1:-}" == "--purge" ]]; then
  rm -rf "$AIGOV_RUN"
  log "removed $AIGOV_RUN"
fi
