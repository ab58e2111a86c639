#!/usr/bin/env bash
# make capacity: the event simulation at several VU levels (stages scaled to each level), one report per
# level via scripts/bench.sh, then one table + chart: bench/reports/capacity-<timestamp>/capacity.md.
#   LEVELS="100 300 500 1000" (default)   TIME_SCALE=1   and everything scripts/bench.sh reads
set -euo pipefail
cd "$(dirname "$0")/.."
LEVELS=${LEVELS:-100 300 500 1000}
REPORT_ROOT=${REPORT_ROOT:-bench/reports}
export REPORT_ROOT
RUNS=()
for vus in $LEVELS; do
  echo "[capacity] $vus VUs"
  VUS=$vus LABEL=vus$vus scripts/bench.sh event-simulation || echo "[capacity] $vus VUs: invariant audit failed (see its report)"
  RUNS+=("$(ls -d "$REPORT_ROOT"/event-simulation-vus"$vus"-* | sort | tail -n 1)")
done
OUT="$REPORT_ROOT/capacity-$(date +%Y%m%d-%H%M%S)"
.venv/bin/python bench/report.py capacity --runs "${RUNS[@]}" --out "$OUT"
echo "[capacity] $OUT/capacity.md"
