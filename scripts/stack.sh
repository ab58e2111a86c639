#!/usr/bin/env bash
# Runs the process list (Procfile) with honcho.
#   stack.sh run     foreground; Ctrl-C stops every process and then the local services
#   stack.sh up      background; returns once /readyz answers 200
#   stack.sh stop    stops the background stack, keeps the local services
#   stack.sh down    stops the background stack and the local services
#   stack.sh status  is the background stack running?
# PROCFILE=Procfile.cluster runs the cluster (every process twice, one beat) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-.run}
PIDFILE="$RUN_DIR/stack.pid"
LOG="$RUN_DIR/logs/stack.log"
WEB_PORT=${WEB_PORT:-8000}
PROCFILE=${PROCFILE:-Procfile}
mkdir -p "$RUN_DIR/logs"

ready() {
  .venv/bin/python - "$WEB_PORT" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=3) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

stop_stack() {
  if running; then
    local pid; pid=$(cat "$PIDFILE")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "[stack] stopped"
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  run)
    if running; then echo "[stack] already running in the background (make down first)"; exit 1; fi
    trap '.venv/bin/python scripts/devservices.py down' EXIT
    echo "[stack] starting: $(cut -d: -f1 "$PROCFILE" | tr '\n' ' ')— Ctrl-C stops everything"
    .venv/bin/honcho -f "$PROCFILE" start || true
    ;;
  up)
    if running; then echo "[stack] already running (pid $(cat "$PIDFILE"))"; else
      setsid .venv/bin/honcho -f "$PROCFILE" start >"$LOG" 2>&1 < /dev/null &
      echo $! > "$PIDFILE"
    fi
    for _ in $(seq 1 120); do
      if ready; then echo "[stack] ready: http://127.0.0.1:$WEB_PORT (logs: $LOG)"; exit 0; fi
      running || { echo "[stack] exited; last log lines:"; tail -n 30 "$LOG"; exit 1; }
      sleep 0.5
    done
    echo "[stack] /readyz did not answer 200 within 60 s; last log lines:"; tail -n 30 "$LOG"; exit 1
    ;;
  stop)
    stop_stack
    ;;
  down)
    stop_stack
    .venv/bin/python scripts/devservices.py down
    ;;
  status)
    if running; then echo "[stack] running (pid $(cat "$PIDFILE"))"; else echo "[stack] not running"; fi
    ;;
  *) echo "usage: $0 run|up|stop|down|status" >&2; exit 2 ;;
esac
