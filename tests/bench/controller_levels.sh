#!/usr/bin/env bash
# The controller benchmark twice in one sitting: the flat run (5,000 AIBudgets) and the same
# with 50 ClusterAIBudgets over them (every record then charged at both levels), printed side
# by side with the ratio, since runs hours apart on these machines differ more than the effect.
# Usage: bash tests/bench/controller_levels.sh   (~8 minutes; starts and stops its own environments)
#   AIGOV_BENCH_CLUSTER_BUDGETS (default 50) and the variables tests/bench/controller.sh reads.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mktemp -d /tmp/aigov-bench-levels.XXXXXX)"
caps="${AIGOV_BENCH_CLUSTER_BUDGETS:-50}"
AIGOV_BENCH_CLUSTER_BUDGETS=0 AIGOV_BENCH_SUMMARY="$out/flat.json" bash "$here/controller.sh"
AIGOV_BENCH_CLUSTER_BUDGETS="$caps" AIGOV_BENCH_SUMMARY="$out/levels.json" bash "$here/controller.sh"
python3 - "$out/flat.json" "$out/levels.json" <<'PY'
import json, sys
flat, levels = (json.load(open(p)) for p in sys.argv[1:3])
rows = [("every status written once after start", "initial_s", "{:.1f} s"),
        ("records ingested", "records_per_second", "{:,.0f} /s"),
        ("exchange p99", "exchange_p99_ms", "{:.2f} ms"),
        ("status writes during the stream", "writes_per_second", "{:.0f} /s"),
        ("every status exact after the stream stopped", "current_s", "{:.1f} s"),
        ("controller CPU per record", "cpu_per_record_us", "{:.1f} µs"),
        ("peak memory (VmHWM)", "peak_mib", "{:.1f} MiB")]
print(f"\n| | {flat['budgets']} AIBudgets | + {levels['cluster_budgets']} ClusterAIBudgets | ratio |")
print("|---|---|---|---|")
for label, key, fmt in rows:
    ratio = levels[key] / flat[key] if flat[key] else float("nan")
    print(f"| {label} | {fmt.format(flat[key])} | {fmt.format(levels[key])} | {ratio:.2f} |")
PY
