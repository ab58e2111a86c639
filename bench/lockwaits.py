"""Row-lock waits during a benchmark: InnoDB's counters over the run and the rows that were waited on.

    python bench/lockwaits.py --out lockwaits.json [--interval 0.1]

Until SIGTERM/SIGINT it samples `information_schema.INNODB_LOCK_WAITS` joined with `INNODB_LOCKS`
every `--interval` seconds and counts, per locked row (table, index, key), in how many samples
some transaction was waiting for it, and which statements (literals stripped) were waiting. On exit
it writes the delta of `Innodb_row_lock_waits` and `Innodb_row_lock_time` (ms) over the whole run
and the rows and statements most waited on. Connects with the
project's database settings (the dev stack's by default).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import time
from collections import Counter
from pathlib import Path

from procstats import django_setup

WAITS_SQL = """
SELECT l.lock_table, l.lock_index, l.lock_data, t.trx_query
FROM information_schema.INNODB_LOCK_WAITS w
JOIN information_schema.INNODB_LOCKS l ON l.lock_id = w.blocking_lock_id
LEFT JOIN information_schema.INNODB_TRX t ON t.trx_id = w.requesting_trx_id
"""


def statement_shape(sql: str | None) -> str:
    """The waiting statement without its literals, so that waits of one kind add up."""
    if not sql:
        return "(between statements)"
    shape = re.sub(r"'[^']*'", "?", sql)
    shape = re.sub(r"\b\d+\b", "?", shape)
    return re.sub(r"\s+", " ", shape)[:140]


def row_lock_counters(cursor) -> dict[str, int]:
    cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_row_lock_waits', 'Innodb_row_lock_time')")
    return {name: int(value) for name, value in cursor.fetchall()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    django_setup()
    from django.db import connection

    rows: Counter[str] = Counter()
    statements: Counter[str] = Counter()  # what the waiting transactions were running
    samples = waiting_samples = 0
    with connection.cursor() as cursor:
        before, started = row_lock_counters(cursor), time.monotonic()
        while running:
            cursor.execute(WAITS_SQL)
            found = cursor.fetchall()
            samples += 1
            waiting_samples += bool(found)
            for table, index, key, query in found:
                rows[f"{table} {index} {key}"] += 1
                statements[statement_shape(query)] += 1
            time.sleep(args.interval)
        after = row_lock_counters(cursor)
    total = sum(rows.values()) or 1
    result = {
        "seconds": round(time.monotonic() - started, 1),
        "row_lock_waits": after["Innodb_row_lock_waits"] - before["Innodb_row_lock_waits"],
        "row_lock_time_ms": after["Innodb_row_lock_time"] - before["Innodb_row_lock_time"],
        "interval_seconds": args.interval,
        "samples": samples,
        "samples_with_waits": waiting_samples,
        "top_rows": [
            {"row": row, "waiter_samples": n, "share": round(n / total, 3)} for row, n in rows.most_common(15)
        ],
        "top_waiting_statements": [
            {"statement": sql, "waiter_samples": n, "share": round(n / total, 3)}
            for sql, n in statements.most_common(10)
        ],
    }
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
