"""What one refresh of the sale dashboard costs (`GET /admin/sale/data`): CPU, SQL, Redis.

    DJANGO_ENV=test DB_NAME=<database> .venv/bin/python bench/dashboard_refresh.py [--fill-redis] [--rounds 20]

Calls the real view (admin_view and all) with a staff user that is never saved, so the script only
reads the database it is pointed at. With --fill-redis it first writes 300 s of busy per-second
buckets under this REDIS_KEY_PREFIX (so the Redis side is measured at full size). Three cases:
  first load      no `since`: the whole 300 s window for the charts;
  refresh         `since` = 2 s ago (what the page sends every 2.5 s), shared caches warm;
  refresh, cold   the same with the shared 'sold' and pipeline caches expired (every 5-10 s, one
                  refresh in the whole cluster pays this).
During `make bench SCENARIO=event-simulation`, point it at the bench's DB and Redis prefix.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.cache import caches  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django_redis import get_redis_connection  # noqa: E402
from redis.client import Pipeline, Redis  # noqa: E402

from common.live.recorder import Recorder  # noqa: E402
from dashboard.urls import urlpatterns  # noqa: E402
from shop.models import User  # noqa: E402

COUNTS = {"commands": 0, "round_trips": 0}
_execute_command = Redis.execute_command
_pipeline_execute = Pipeline.execute


def counted_command(self, *args, **kwargs):
    if not isinstance(self, Pipeline):
        COUNTS["commands"] += 1
        COUNTS["round_trips"] += 1
    return _execute_command(self, *args, **kwargs)


def counted_pipeline(self, *args, **kwargs):
    COUNTS["commands"] += len(self.command_stack)
    COUNTS["round_trips"] += 1
    return _pipeline_execute(self, *args, **kwargs)


Redis.execute_command = counted_command
Pipeline.execute = counted_pipeline


def fill_redis() -> None:
    recorder = Recorder()
    now = int(time.time())
    for second in range(now - 305, now + 1):
        bucket = {f"{g}:{k}": 50 for g in ("queue", "checkout", "payment", "api", "other") for k in ("n", "2xx", "4xx")}
        bucket.update({f"{g}:l{i}": 5 for g in ("queue", "checkout", "payment") for i in range(4, 14)})
        bucket.update({"orders:queue": 20, "refused:SOLD_OUT": 7, "failed:SOLD_OUT": 3, "api:5xx": 0})
        recorder._buckets[second] = bucket
    recorder.flush(everything=True)


def measure(view, query: str, *, cold: bool) -> dict[str, float]:
    if cold:
        get_redis_connection("default").delete(*caches["default"].keys("dashboard:*") or ["-"])
        caches["default"].delete_pattern("dashboard:*")
    request = RequestFactory().get("/admin/sale/data" + query)
    request.user = User(username="bench-operator", is_staff=True, is_superuser=True, is_active=True)
    COUNTS.update(commands=0, round_trips=0)
    cpu, wall = time.process_time(), time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        response = view(request)
    assert response.status_code == 200, response.content[:300]
    return {
        "cpu_ms": (time.process_time() - cpu) * 1000,
        "wall_ms": (time.perf_counter() - wall) * 1000,
        "sql": len(queries),
        "redis_commands": COUNTS["commands"],
        "redis_round_trips": COUNTS["round_trips"],
        "bytes": len(response.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--fill-redis", action="store_true")
    args = parser.parse_args()
    if args.fill_redis:
        fill_redis()
    view = next(p for p in urlpatterns if p.name == "sale-dashboard-data").callback
    measure(view, "", cold=True)  # warm up imports and connections
    cases = {
        "first load": ("", False),
        "refresh": (None, False),
        "refresh, cold": (None, True),
    }
    print(f"database {connection.settings_dict['NAME']}, {args.rounds} rounds each (median; CPU of this process)")
    for name, (query, cold) in cases.items():
        rows = []
        for _ in range(args.rounds):
            q = query if query is not None else f"?since={int(time.time()) - 5}"
            rows.append(measure(view, q, cold=cold))
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(
            f"{name:14s} CPU {med['cpu_ms']:6.2f} ms  wall {med['wall_ms']:6.2f} ms  SQL {med['sql']:.0f}  "
            f"Redis {med['redis_commands']:.0f} commands in {med['redis_round_trips']:.0f} round trips  "
            f"{med['bytes'] / 1024:.1f} KiB"
        )


if __name__ == "__main__":
    main()
