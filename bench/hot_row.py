"""Hot-row limit: commits/s on ONE stock row of the project's MariaDB, by write pattern and thread count.

    .venv/bin/python bench/hot_row.py [--seconds 10] [--threads 8,16,32] [--runs 3] [--buckets 4]
                                      [--modes reserve,guarded,buckets] [--out result.json] [--keep-db]

Why: every order of a flash-sale product writes the same `inventory_stock` row, so that row's
commit rate caps the synchronous checkout whatever the number of web workers (docs/SCALING.md).

Each measurement runs N threads, each with its own DB connection, for T seconds against:
- reserve: the real `inventory.services.stock_reserve` (one line, quantity 1) in `transaction.atomic()`,
  as the synchronous checkout does per line: `SELECT ... FOR UPDATE`, guarded `UPDATE`, `INSERT`
  of the Reservation row, commit;
- guarded: one conditional `UPDATE ... WHERE pk = %s AND quantity >= reserved_quantity + 1` in autocommit
  (no read, no reservation row: the least a reservation can cost on one row);
- buckets: the same guarded UPDATE on one of K rows ("buckets" of one product's stock) picked at
  random per call: what splitting a hot product's stock into K rows would give.
Reported per measurement: commits/s, p50/p95/p99 per-commit latency (ms), errors (lock wait
timeouts), mariadbd CPU (% of one core, from /proc of `.run/mariadb/mariadbd.pid`), this process's CPU,
and the 1-minute load average. The final row counts are checked against the commits counted (the
script fails if they differ). Runs are interleaved (run 1 of every case, then run 2, ...) so load drift
hits every case alike; the summary gives the median of the runs.

Isolation: everything happens in a throw-away database (`bench_hot_row`, created and migrated at the
start and dropped at the end unless --keep-db); the `shop` database is never written.
Settings come from config/settings (DJANGO_ENV=local by default: MariaDB on 127.0.0.1:3307).
Not part of the test suite: run it by hand on a quiet machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from procstats import TICKS, cpu_ticks, django_setup, percentile  # noqa: E402

BENCH_DB = "bench_hot_row"
MODES = ("reserve", "guarded", "buckets")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See the module docstring.")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of one measurement (default 10)")
    parser.add_argument("--threads", default="8,16,32", help="comma-separated thread counts (default 8,16,32)")
    parser.add_argument("--runs", type=int, default=3, help="runs of every case; the summary is the median")
    parser.add_argument("--buckets", type=int, default=4, help="K stock rows for the buckets mode (default 4)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="spread the threads over P processes, so the client's GIL is not the limit (default 1)",
    )
    parser.add_argument("--db-name", default=BENCH_DB, help=f"throw-away database name (default {BENCH_DB})")
    parser.add_argument("--keep-db", action="store_true", help="keep the throw-away database at the end")
    parser.add_argument("--out", help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    args.threads = [int(n) for n in args.threads.split(",")]
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    return args


# --- process statistics ----------------------------------------------------------------------


def mariadb_pid() -> int | None:
    try:
        return int((REPO / ".run" / "mariadb" / "mariadbd.pid").read_text().strip())
    except (OSError, ValueError):
        return None


# --- the bench rows ----------------------------------------------------------------------------


def make_stock_rows(count: int) -> list[int]:
    """`count` products with a stock row each, and enough units for any run; returns their ids."""
    from inventory.models import Stock
    from shop.models import Category, Product

    category, _ = Category.objects.get_or_create(name="Bench hot row")
    ids = []
    for _ in range(count):
        product = Product.objects.create(name="Bench hot row", price=1_000, category=category, is_flash_sale=True)
        Stock.objects.create(product=product, quantity=10**15)
        ids.append(product.pk)
    return ids


def reserved_total(product_ids: list[int]) -> int:
    from django.db.models import Sum

    from inventory.models import Stock

    return Stock.objects.filter(pk__in=product_ids).aggregate(total=Sum("reserved_quantity"))["total"] or 0


# --- one commit of each mode -------------------------------------------------------------------

# Reservation.order_id must be unique: a random 40-bit base per process (re-drawn in every child), then a
# counter (next() is atomic under the GIL).
ORDER_IDS = itertools.count(random.getrandbits(40) << 20)


def commit_reserve(product_ids: list[int]) -> bool:
    from django.db import transaction
    from django.utils import timezone

    from inventory.services import stock_reserve

    with transaction.atomic():
        stock_reserve(
            order_id=next(ORDER_IDS), lines=[(product_ids[0], 1)], expires_at=timezone.now() + timedelta(minutes=15)
        )
    return True


def guarded_update(product_id: int) -> bool:
    from django.db.models import F

    from inventory.models import Stock

    return bool(
        Stock.objects.filter(pk=product_id, quantity__gte=F("reserved_quantity") + 1).update(
            reserved_quantity=F("reserved_quantity") + 1, version=F("version") + 1
        )
    )


def commit_guarded(product_ids: list[int]) -> bool:
    return guarded_update(product_ids[0])


def commit_buckets(product_ids: list[int]) -> bool:
    return guarded_update(random.choice(product_ids))


COMMITS = {"reserve": commit_reserve, "guarded": commit_guarded, "buckets": commit_buckets}


# --- one measurement ---------------------------------------------------------------------------


def thread_group(mode: str, threads: int, product_ids: list[int], ready, end) -> list[tuple]:
    """Run `threads` committing threads (own connection each) until `end.value`; their results."""
    from django.db import OperationalError, connection

    commit = COMMITS[mode]
    results: list[tuple] = []
    lock = threading.Lock()

    def worker() -> None:
        latencies, failures, refused, crash = [], 0, 0, None
        try:
            connection.ensure_connection()  # connect before the clock starts
            ready.wait()
            deadline = end.value
            while (start := time.time()) < deadline:
                try:
                    done = commit(product_ids)
                except OperationalError:  # lock wait timeout / deadlock: counted, not committed
                    failures += 1
                    continue
                if done:
                    latencies.append(time.time() - start)
                else:
                    refused += 1
        except Exception as error:  # noqa: BLE001 - reported by the parent, which fails the measurement
            crash = repr(error)
        finally:
            connection.close()
            with lock:
                results.append((latencies, failures, refused, crash))

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def child_group(mode, threads, product_ids, ready, end, queue) -> None:
    global ORDER_IDS
    ORDER_IDS = itertools.count(random.SystemRandom().getrandbits(40) << 20)
    queue.put(thread_group(mode, threads, product_ids, ready, end))


def measure(mode: str, threads: int, seconds: float, product_ids: list[int], processes: int) -> dict:
    """N threads (spread over `processes` processes) commit `mode` on `product_ids` for `seconds`."""
    from django.db import connections

    ctx = multiprocessing.get_context("fork")
    ready = ctx.Barrier(threads + 1)
    end = ctx.Value("d", 0.0)
    before_rows = reserved_total(product_ids)
    connections.close_all()  # children must not share the parent's socket
    per_process = [threads // processes + (1 if i < threads % processes else 0) for i in range(processes)]
    results: list[tuple] = []
    if processes == 1:
        collector = threading.Thread(
            target=lambda: results.extend(thread_group(mode, threads, product_ids, ready, end))
        )
        children, queue = [], None
        collector.start()
    else:
        queue = ctx.Queue()
        children = [
            ctx.Process(target=child_group, args=(mode, n, product_ids, ready, end, queue)) for n in per_process if n
        ]
        for child in children:
            child.start()
    db_pid = mariadb_pid()
    db_before, own_before = cpu_ticks(db_pid), os.times()
    end.value = time.time() + seconds  # read by the workers once the barrier opens
    ready.wait()
    started = time.time()
    if processes == 1:
        collector.join()
    else:
        for _ in children:
            results.extend(queue.get())
        for child in children:
            child.join()
    elapsed = time.time() - started
    db_after, own_after = cpu_ticks(db_pid), os.times()

    crashes = [result[3] for result in results if result[3]]
    if crashes:
        raise RuntimeError(f"{mode}/{threads}: {len(crashes)} worker(s) failed, first: {crashes[0]}")
    latencies = sorted(latency for result in results for latency in result[0])
    commits = len(latencies)
    moved = reserved_total(product_ids) - before_rows
    if moved != commits:
        raise AssertionError(f"{mode}/{threads}: {commits} commits counted but reserved moved by {moved}")
    own_cpu = sum(own_after[:4]) - sum(own_before[:4])  # user + system, self + waited-for children
    return {
        "mode": mode,
        "threads": threads,
        "processes": processes,
        "seconds": round(elapsed, 3),
        "commits": commits,
        "commitsPerSecond": round(commits / elapsed, 1),
        "latencyMs": {
            "p50": round(percentile(latencies, 0.50) * 1000, 2),
            "p95": round(percentile(latencies, 0.95) * 1000, 2),
            "p99": round(percentile(latencies, 0.99) * 1000, 2),
        },
        "errors": sum(result[1] for result in results),
        "refused": sum(result[2] for result in results),
        "mariadbCpuPercent": (
            round(100 * (db_after - db_before) / TICKS / elapsed, 1) if db_before is not None else None
        ),
        "benchCpuPercent": round(100 * own_cpu / elapsed, 1),
        "loadAvg1": round(os.getloadavg()[0], 2),
    }


def summarize(measurements: list[dict]) -> list[dict]:
    cases: dict[tuple[str, int], list[dict]] = {}
    for m in measurements:
        cases.setdefault((m["mode"], m["threads"]), []).append(m)
    summary = []
    for (mode, threads), runs in cases.items():

        def median(key, runs=runs):
            return round(statistics.median(key(r) for r in runs), 2)

        summary.append(
            {
                "mode": mode,
                "threads": threads,
                "runs": len(runs),
                "commitsPerSecond": median(lambda r: r["commitsPerSecond"]),
                "p50Ms": median(lambda r: r["latencyMs"]["p50"]),
                "p95Ms": median(lambda r: r["latencyMs"]["p95"]),
                "p99Ms": median(lambda r: r["latencyMs"]["p99"]),
                "errors": sum(r["errors"] for r in runs),
                "mariadbCpuPercent": median(lambda r: r["mariadbCpuPercent"] or 0),
                "benchCpuPercent": median(lambda r: r["benchCpuPercent"]),
            }
        )
    return summary


def print_table(summary: list[dict]) -> None:
    header = ("mode", "N", "commits/s", "p50 ms", "p95 ms", "p99 ms", "err", "db cpu%", "bench cpu%")
    print("{:<8} {:>3} {:>10} {:>8} {:>8} {:>8} {:>4} {:>8} {:>10}".format(*header))
    for s in summary:
        print(
            f"{s['mode']:<8} {s['threads']:>3} {s['commitsPerSecond']:>10,.0f} {s['p50Ms']:>8.2f} {s['p95Ms']:>8.2f} "
            f"{s['p99Ms']:>8.2f} {s['errors']:>4} {s['mariadbCpuPercent']:>8.0f} {s['benchCpuPercent']:>10.0f}"
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    django_setup()
    from django.db import connection

    connection.settings_dict["TEST"] = {**connection.settings_dict.get("TEST", {}), "NAME": args.db_name}
    old_name = connection.settings_dict["NAME"]
    print(f"preparing throw-away database {args.db_name} ...", flush=True)
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=True, serialize=False)
    try:
        hot = make_stock_rows(1)
        buckets = make_stock_rows(args.buckets)
        rows = {"reserve": hot, "guarded": hot, "buckets": buckets}
        load_start = os.getloadavg()
        measurements = []
        for run in range(1, args.runs + 1):
            for mode in args.modes:
                for threads in args.threads:
                    m = measure(mode, threads, args.seconds, rows[mode], args.processes)
                    m["run"] = run
                    measurements.append(m)
                    print(
                        f"run {run} {mode:<8} N={threads:<3} {m['commitsPerSecond']:>9,.0f} commits/s "
                        f"p50 {m['latencyMs']['p50']:.2f} ms p95 {m['latencyMs']['p95']:.2f} ms "
                        f"errors {m['errors']} mariadbd {m['mariadbCpuPercent']}% bench {m['benchCpuPercent']}% "
                        f"load {m['loadAvg1']}",
                        flush=True,
                    )
        summary = summarize(measurements)
        print(f"\nmedian of {args.runs} runs, {args.seconds:g} s each:")
        print_table(summary)
        result = {
            "benchmark": "hot_row",
            "database": args.db_name,
            "seconds": args.seconds,
            "buckets": args.buckets,
            "processes": args.processes,
            "cpus": os.cpu_count(),
            "loadAvgAtStart": [round(x, 2) for x in load_start],
            "loadAvgAtEnd": [round(x, 2) for x in os.getloadavg()],
            "summary": summary,
            "measurements": measurements,
        }
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
            print(f"wrote {args.out}")
    finally:
        if not args.keep_db:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
