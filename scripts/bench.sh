#!/usr/bin/env bash
# make bench SCENARIO=<name>: run k6/<name>.js against the whole stack and write a report.
#   1. starts the stack (scripts/stack.sh up) unless something already answers /readyz on WEB_PORT
#   2. reseeds: earlier runs' unpaid orders expired, flash products 1..5 restocked, event coupons reset,
#      fresh tokens for users 1..1000
#   3. runs the scenario with `--out csv=` while bench/procstats.py samples CPU/memory every second and
#      bench/lockwaits.py the rows transactions wait on (and InnoDB's row-lock counters over the run)
#   4. runs `manage.py audit_invariants`
#   5. writes bench/reports/<name>[-<label>]-<timestamp>/report.md + PNGs (bench/report.py)
# Environment (all optional):
#   WEB_PORT (8000) SSE_PORT (8001) RUN_DIR (.run)    where the stack listens / keeps its logs
#   WEB_WORKERS, WEB_THREADS (Procfile)   web tuning
#   VUS, TIME_SCALE, THINK_MIN, THINK_MAX, DURATION, SYNC   passed to the k6 script (see k6/README.md)
#   FLASH_STOCK (20000)   units made available on each flash product before the run
#   LABEL                 added to the report folder name (the capacity run uses vus<N>)
#   WEB_LABEL             how the report names the web server (scripts/bench_baseline.sh: the older commit's)
#   REPORT_ROOT (bench/reports)  RAW_ROOT ($RUN_DIR/bench): where raw samples go (large, not committed)
# Exit status: non-zero if the invariant audit fails (k6 threshold failures are reported, not fatal).
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIO=${1:-${SCENARIO:-}}
if [[ -z "$SCENARIO" || ! -f "k6/$SCENARIO.js" ]]; then
  echo "usage: make bench SCENARIO=<name>; scenarios: $(cd k6 && ls *.js | sed 's/\.js$//' | tr '\n' ' ')" >&2
  exit 2
fi
export WEB_PORT=${WEB_PORT:-8000} SSE_PORT=${SSE_PORT:-8001} RUN_DIR=${RUN_DIR:-.run}
PY=.venv/bin/python
BASE_URL="http://127.0.0.1:$WEB_PORT"
STAMP=$(date +%Y%m%d-%H%M%S)
NAME="$SCENARIO${LABEL:+-$LABEL}"
REPORT_DIR="${REPORT_ROOT:-bench/reports}/$NAME-$STAMP"
RAW_DIR="$(realpath -m "${RAW_ROOT:-$RUN_DIR/bench}")/$NAME-$STAMP"
mkdir -p "$REPORT_DIR" "$RAW_DIR"

# 1. the stack
if curl -fsS -o /dev/null --max-time 3 "$BASE_URL/readyz"; then
  echo "[bench] using the stack already answering on $BASE_URL"
else
  scripts/stack.sh up
fi
STACK_PID=""
[[ -f "$RUN_DIR/stack.pid" ]] && STACK_PID=$(cat "$RUN_DIR/stack.pid")

# 2. reseed
echo "[bench] reseeding"
$PY manage.py expire_unpaid --users 1-1000   # earlier runs' unpaid orders count against the per-user limits
$PY manage.py restock --products 1-5 --available "${FLASH_STOCK:-20000}"
$PY manage.py reset_coupons --ids 1-3,9,10 --reopen
$PY manage.py issue_tokens --users 1-1000 --out "$RAW_DIR/tokens.json" >/dev/null

# 3. the run, sampled
$PY bench/procstats.py --out "$RAW_DIR/procstats.csv" --k6-marker "$RAW_DIR" ${STACK_PID:+--stack-pid "$STACK_PID"} &
SAMPLER=$!
$PY bench/lockwaits.py --out "$RAW_DIR/lockwaits.json" &
LOCKS=$!
trap 'kill "$SAMPLER" "$LOCKS" 2>/dev/null || true' EXIT
K6_ENV=(-e "BASE_URL=$BASE_URL" -e "TOKENS=$RAW_DIR/tokens.json" -e "OUT=$RAW_DIR/summary.json")
for var in VUS TIME_SCALE THINK_MIN THINK_MAX DURATION SYNC; do
  [[ -n "${!var:-}" ]] && K6_ENV+=(-e "$var=${!var}")
done
echo "[bench] k6 run k6/$SCENARIO.js ${VUS:+(VUS=$VUS)} -> $RAW_DIR"
set +e
K6_CSV_TIME_FORMAT=unix_milli .venv/bin/k6 run -q --address 127.0.0.1:0 "${K6_ENV[@]}" \
  --system-tags status,name,method,scenario,error_code --out "csv=$RAW_DIR/samples.csv.gz" "k6/$SCENARIO.js"
K6_RC=$?
set -e
kill "$SAMPLER" "$LOCKS" 2>/dev/null || true
wait "$SAMPLER" "$LOCKS" 2>/dev/null || true
[[ -f "$RAW_DIR/summary.json" ]] && mkdir -p k6/results && cp "$RAW_DIR/summary.json" "k6/results/$NAME.json"

# 4. invariants
echo "[bench] audit_invariants"
set +e
$PY manage.py audit_invariants >"$RAW_DIR/audit.txt" 2>&1
AUDIT_RC=$?
set -e
cat "$RAW_DIR/audit.txt"

# 5. report
$PY bench/report.py run --raw "$RAW_DIR" --out "$REPORT_DIR" --scenario "$SCENARIO" \
  --k6-exit "$K6_RC" --audit-exit "$AUDIT_RC" \
  --web "${WEB_LABEL:-granian (WSGI) behind nginx, workers=${WEB_WORKERS:-2} threads=${WEB_THREADS:-8}}"
echo "[bench] report: $REPORT_DIR/report.md (k6 exit $K6_RC, audit exit $AUDIT_RC)"
echo "$REPORT_DIR" >"$RAW_DIR/report-dir"
exit "$AUDIT_RC"
