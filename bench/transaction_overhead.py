"""What opening and closing a transaction costs: BEGIN (our backend) against Django's SET autocommit.

    .venv/bin/python bench/transaction_overhead.py [--n 3000] [--rounds 3]

Runs `n` transactions of one primary-key SELECT each against the stack's MariaDB (the settings of
`make up`), alternating the two ways of opening a transaction round by round:
- "begin": common/db_backend as shipped, BEGIN ... COMMIT with the session left in autocommit;
- "set-autocommit": Django's default, SET autocommit=0 ... COMMIT, SET autocommit=1.
Prints, per transaction, the client's CPU (this process), MariaDB's CPU (from /proc, by its pid
file under $RUN_DIR) and the wall time. Run it on a quiet machine and compare the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

import common.db_backend.base as backend  # noqa: E402
from shop.models import Category  # noqa: E402


def ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def run(n: int, mariadb_pid: int) -> tuple[float, float, float]:
    list(Category.objects.filter(pk=1).values_list("pk"))
    server, client, wall = ticks(mariadb_pid), time.process_time(), time.perf_counter()
    for _ in range(n):
        with transaction.atomic():
            list(Category.objects.filter(pk=1).values_list("pk"))
    hz = os.sysconf("SC_CLK_TCK")
    return (
        (time.process_time() - client) * 1000 / n,
        (ticks(mariadb_pid) - server) * 1000 / hz / n,
        (time.perf_counter() - wall) * 1000 / n,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run-dir", default=os.environ.get("RUN_DIR", str(ROOT / ".run")))
    args = parser.parse_args()
    mariadb_pid = int(Path(args.run_dir, "mariadb", "mariadbd.pid").read_text())
    begin = backend.DatabaseWrapper._start_transaction_under_autocommit
    figures: dict[str, list[tuple[float, float, float]]] = {"begin": [], "set-autocommit": []}
    for _ in range(args.rounds):
        for label in figures:
            if label == "begin":
                backend.DatabaseWrapper._start_transaction_under_autocommit = begin
            else:
                del backend.DatabaseWrapper._start_transaction_under_autocommit  # Django's default path
            connection.close()
            figures[label].append(run(args.n, mariadb_pid))
            print(f"{label:15} client %.3f ms, mariadb %.3f ms, wall %.3f ms per transaction" % figures[label][-1])
    backend.DatabaseWrapper._start_transaction_under_autocommit = begin
    print(f"load average {os.getloadavg()[0]:.2f}; medians:")
    for label, runs in figures.items():
        client, server, wall = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"{label:15} client {client:.3f} ms, mariadb {server:.3f} ms, wall {wall:.3f} ms")


if __name__ == "__main__":
    main()
