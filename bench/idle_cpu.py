"""What the stack burns with no traffic: CPU per process, in % of one core.

    python bench/idle_cpu.py [--windows 5] [--seconds 20] [--run-dir $RUN_DIR] [--out idle.json]

Reads the CPU ticks (user + system, from /proc) of every process of a running stack (`make up`: the
process tree under `$RUN_DIR/stack.pid`, by role as in `bench/cpu_per_request.py`) and of the shared
services (MariaDB, Redis, the broker, found by name), over `--windows` windows of `--seconds` each,
and prints the median per role. CPU seconds hold on a busy machine where wall-clock figures do not,
but the shared services' figures include whatever else uses them: on a shared machine, measure what
*this* stack costs the broker as the difference between runs with the stack stopped and running
(`--services-only` with the stack stopped), in the same sitting.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_per_request import STACK_ROLES  # noqa: E402
from procstats import TICKS, descends_from, read_proc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"mariadbd": "mariadb", "tansu": "broker", "redis-server": "redis"}
ORDER = ("web", "proxy", "sse", "celery", "beat", "checkout", "outbox", "relay", "mariadb", "redis", "broker")


def service_ports() -> dict[str, str]:
    """The ports of this stack's Redis and broker (from its environment): other instances on the
    machine are not counted."""
    redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6380/0").rsplit(":", 1)[-1].split("/")[0]
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092").split(",")[0].rsplit(":", 1)[-1]
    return {"redis": redis, "broker": kafka}


def ticks(stack_pid: int | None, ports: dict[str, str]) -> dict[str, int]:
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := read_proc(int(entry))) is not None:
            procs[int(entry)] = info
    parents = {pid: info[1] for pid, info in procs.items()}
    totals: dict[str, int] = defaultdict(int)
    for pid, (comm, _ppid, used, _rss, cmdline) in procs.items():
        role = SERVICES.get(comm)
        if role in ports and f":{ports[role]}" not in cmdline:
            role = None  # another Redis or broker on this machine
        if role is None and stack_pid is not None and descends_from(pid, stack_pid, parents):
            role = next((r for needle, r in STACK_ROLES if needle in cmdline), None)
        if role is not None:
            totals[role] += used
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=os.environ.get("RUN_DIR", str(ROOT / ".run")))
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--services-only", action="store_true", help="the shared services only (stack stopped)")
    parser.add_argument("--out", help="write the per-window figures as JSON here")
    args = parser.parse_args()
    stack_pid = None if args.services_only else int((Path(args.run_dir) / "stack.pid").read_text().strip())
    ports = service_ports()
    windows: dict[str, list[float]] = defaultdict(list)
    loads = []
    for _ in range(args.windows):
        before, started = ticks(stack_pid, ports), time.monotonic()
        time.sleep(args.seconds)
        after, elapsed = ticks(stack_pid, ports), time.monotonic() - started
        for role in set(before) | set(after):
            windows[role].append(100 * (after.get(role, 0) - before.get(role, 0)) / TICKS / elapsed)
        loads.append(os.getloadavg()[0])
    medians = {role: statistics.median(values) for role, values in windows.items()}
    ours = sum(v for r, v in medians.items() if r not in SERVICES.values())
    print(f"load average (1 min) during the windows: {', '.join(f'{x:.2f}' for x in loads)}")
    print("| role | % of one core (median of windows) | windows |")
    print("|---|---:|---|")
    for role in sorted(medians, key=lambda r: ORDER.index(r) if r in ORDER else 99):
        print(f"| {role} | {medians[role]:.2f} | {', '.join(f'{v:.1f}' for v in windows[role])} |")
    print(f"| our processes | {ours:.2f} | |")
    if args.out:
        Path(args.out).write_text(json.dumps({"load": loads, "windows": windows, "median": medians}, indent=2))


if __name__ == "__main__":
    main()
