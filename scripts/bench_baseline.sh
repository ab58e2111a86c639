#!/usr/bin/env bash
# make bench-baseline: run a benchmark scenario against an older commit of the project, in the same sitting as the
# current code, so that "×N against before" is one measurement on one machine (issue 16 asks for ×3 against 0f1a688).
#   1. a detached git worktree of REV under .run/baseline-<REV>, with its own venv built from its own pinned
#      requirements (gunicorn for 0f1a688, where the current code runs granian)
#   2. this checkout's benchmark harness copied over the worktree's (k6/, bench/, scripts/bench.sh), so both sides are
#      driven, sampled and reported the same way; a reseeding command REV does not have is skipped
#   3. its own database (shop_base), Redis database 4, its own Kafka topic and group prefixes and its own RUN_DIR, on
#      the project's MariaDB, Redis and broker. The main stack must be stopped (make stop): two stacks on two cores
#      would measure neither
#   4. migrate, seed, start its stack, top every wallet up to 1,000,000 (bench/topup_wallets.py), run
#      scripts/bench.sh SCENARIO with LABEL=base-<REV>, stop its stack. The report lands in this checkout's
#      bench/reports/, beside the current code's.
# Environment (all optional): REV (0f1a688) SCENARIO (event-simulation) LABEL (base-<REV>) and what scripts/bench.sh
# reads (VUS, TIME_SCALE, ...). Run the current code the same way: make stop && make up, bench/topup_wallets.py,
# make bench SCENARIO=... (see docs/REPORT.md, "Black Friday against 0f1a688").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REV=${REV:-0f1a688}
SCENARIO=${SCENARIO:-event-simulation}
LABEL=${LABEL:-base-$REV}
WT="$ROOT/.run/baseline-$REV"
PY=.venv/bin/python

if curl -fsS -o /dev/null --max-time 3 "http://127.0.0.1:${WEB_PORT:-8000}/readyz"; then
  echo "[baseline] something answers on port ${WEB_PORT:-8000}: stop the main stack first (make stop)" >&2
  exit 1
fi
$PY scripts/devservices.py up

# 1. the worktree and its venv
if [[ ! -d "$WT" ]]; then
  git worktree add --detach "$WT" "$REV"
fi
if [[ ! -x "$WT/.venv/bin/python" || "$WT/requirements.txt" -nt "$WT/.venv/.installed" ]]; then
  python3 -m venv "$WT/.venv"
  "$WT/.venv/bin/pip" install -q -r "$WT/requirements.txt"
  # the copied bench/report.py draws its charts with this checkout's matplotlib, which REV may not pin
  "$WT/.venv/bin/pip" install -q "$(grep -m1 '^matplotlib==' requirements-dev.txt)"
  touch "$WT/.venv/.installed"
fi

# 2. the same harness on both sides
rm -rf "$WT/k6" "$WT/bench"
cp -r k6 "$WT/k6"
cp -r bench "$WT/bench"
rm -rf "$WT/bench/reports"
cp scripts/bench.sh "$WT/scripts/bench.sh"
if [[ ! -f "$WT/orders/management/commands/expire_unpaid.py" ]]; then
  # REV has no per-user limit on unpaid orders, so it has nothing to expire before a run
  sed -i 's|^\$PY manage.py expire_unpaid .*|: # expire_unpaid: not in this commit|' "$WT/scripts/bench.sh"
fi

# 3. its own database, Redis database, topics and groups
export DB_NAME=shop_base REDIS_URL=redis://127.0.0.1:6380/4 KAFKA_TOPIC_PREFIX=base KAFKA_GROUP_PREFIX=base
export RUN_DIR="$WT/.run" REPORT_ROOT="$ROOT/bench/reports" LABEL
$PY - <<'PY'
import MySQLdb, os
conn = MySQLdb.connect(host="127.0.0.1", port=3307, user="shop", passwd=os.environ.get("DB_PASSWORD", "shop"))
conn.cursor().execute("CREATE DATABASE IF NOT EXISTS shop_base CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
PY

# 4. migrate, seed, run, stop
cd "$WT"
.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py seed_demo
trap 'scripts/stack.sh stop || true' EXIT
scripts/stack.sh up
.venv/bin/python manage.py issue_tokens --users 1-1000 --out "$RUN_DIR/tokens.json" >/dev/null
.venv/bin/python bench/topup_wallets.py --tokens "$RUN_DIR/tokens.json" --base-url "http://127.0.0.1:${WEB_PORT:-8000}"
WEB_LABEL="gunicorn gthread (the Procfile of $REV), workers=${WEB_WORKERS:-2} threads=${WEB_THREADS:-8}" \
  scripts/bench.sh "$SCENARIO"
