"""Sample CPU and memory of the stack's processes once a second while a benchmark runs.

    python bench/procstats.py --out stats.csv [--stack-pid PID] [--k6-marker TEXT] [--interval 1]

Reads /proc directly (no psutil). Each row: `t` (unix seconds), `role`, `cpu` (% of one core over the
last interval, summed over the role's processes), `rss_mb`, `procs`. Roles:
nginx, web (granian), uvicorn, celery, consumers (run_consumer, outbox_relay) — the processes of our stack: those in
the process tree under `--stack-pid` (honcho), or every matching process when no pid is given;
mariadbd, redis-server, tansu (shared services); k6 (its command line contains `--k6-marker`).
Role `host` carries the 1-minute load average in `cpu` and used memory in `rss_mb`.
Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import time
from collections import defaultdict
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
SHARED = {"mariadbd": "mariadbd", "redis-server": "redis-server", "tansu": "tansu"}
STACK_ROLES = (
    ("nginx: ", "nginx"),  # the proxy's master and worker processes name themselves so
    ("granian", "web"),
    ("gunicorn", "web"),  # the web server of older commits (scripts/bench_baseline.sh)
    ("uvicorn", "uvicorn"),
    ("celery", "celery"),
    ("run_consumer", "consumers"),
    ("outbox_relay", "consumers"),
)


def read_proc(pid: int) -> tuple[str, int, int, float, str] | None:
    """(comm, parent pid, cpu ticks, rss MB, cmdline) of one process, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid = field 4, utime/stime = 14/15, rss = 24 (pages).
    return comm, int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21]) * PAGE_MB, cmdline


def cpu_ticks(pid: int | None) -> int | None:
    """utime + stime of one process in clock ticks (None if it is gone or unknown)."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank q-quantile of an already sorted list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))]


def django_setup() -> None:
    """Set Django up for a benchmark run from this folder (the dev stack's settings by default)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_ENV", "local")
    import django

    django.setup()


def descends_from(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = parents.get(pid, 0)
    return False


def role_of(comm: str, in_stack: bool, cmdline: str, k6_marker: str | None) -> str | None:
    if comm in SHARED:
        return SHARED[comm]
    if comm == "k6" or cmdline.startswith(("k6 ", ".venv/bin/k6")) or "/k6 run" in cmdline:
        return "k6" if (k6_marker is None or k6_marker in cmdline) else None
    if not in_stack:
        return None
    for needle, role in STACK_ROLES:
        if needle in cmdline:
            return role
    return None


def host_memory_mb() -> float:
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    kb = lambda key: int(info[key].split()[0])  # noqa: E731
    return (kb("MemTotal") - kb("MemAvailable")) / 1024


def sample(stack_pid: int | None, k6_marker: str | None) -> dict[int, tuple[str, int, float]]:
    """pid -> (role, cpu ticks, rss MB) for every process we track."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := read_proc(int(entry))) is not None:
            procs[int(entry)] = info
    parents = {pid: info[1] for pid, info in procs.items()}
    found = {}
    for pid, (comm, _, ticks, rss, cmdline) in procs.items():
        in_stack = stack_pid is None or descends_from(pid, stack_pid, parents)
        role = role_of(comm, in_stack, cmdline, k6_marker)
        if role:
            found[pid] = (role, ticks, rss)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stack-pid", type=int)
    parser.add_argument("--k6-marker")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    previous = sample(args.stack_pid, args.k6_marker)
    last = time.monotonic()
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t", "role", "cpu", "rss_mb", "procs"])
        while running:
            time.sleep(args.interval)
            now = time.monotonic()
            current = sample(args.stack_pid, args.k6_marker)
            elapsed = now - last
            cpu, rss, procs = defaultdict(float), defaultdict(float), defaultdict(int)
            for pid, (role, ticks, mem) in current.items():
                before = previous.get(pid)
                delta = ticks - before[1] if before else 0
                cpu[role] += 100.0 * delta / TICKS / elapsed
                rss[role] += mem
                procs[role] += 1
            stamp = round(time.time(), 3)
            for role in sorted(cpu):
                writer.writerow([stamp, role, round(cpu[role], 1), round(rss[role], 1), procs[role]])
            writer.writerow([stamp, "host", os.getloadavg()[0], round(host_memory_mb(), 1), 0])
            handle.flush()
            previous, last = current, now


if __name__ == "__main__":
    main()
