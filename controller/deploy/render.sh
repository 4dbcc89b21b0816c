#!/usr/bin/env bash
# Renders the Helm chart (controller/deploy/chart/aigov, default values, release `aigov` in
# `aigov-system`) into controller/deploy/aigov.yaml, for `kubectl apply` users: the chart is
# the one source; tests/e2e/tests/helm.rs fails when the committed rendering drifts from it.
# Uses $AIGOV_HELM (tests/env/tools.sh helm builds it), else `helm` on PATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Rendered aside first: a missing or failing helm leaves the committed file as it was.
rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
"${AIGOV_HELM:-helm}" template aigov "$here/chart/aigov" -n aigov-system >"$rendered"
mv "$rendered" "$here/aigov.yaml"
echo "wrote $here/aigov.yaml"
