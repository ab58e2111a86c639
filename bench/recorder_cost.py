"""What the sale dashboard's request recorder costs each request (a micro-benchmark, not a test).

    DJANGO_ENV=test .venv/bin/python bench/recorder_cost.py [--requests 200000]

Measures, in this process, with the recorder's flush thread writing to the configured Redis:
  - `RECORDER.observe_request` alone (the lock, the bucket dict, the histogram index);
  - `LiveMetricsMiddleware` around a view that returns at once, minus the bare view;
  - `WhiteNoiseMiddleware` the same way, for a non-static path (it sits on every request too);
  - one flush (the pipeline of one second's bucket) for a busy second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.http import HttpResponse  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from django.urls import resolve  # noqa: E402
from whitenoise.middleware import WhiteNoiseMiddleware  # noqa: E402

from common.live.middleware import LiveMetricsMiddleware  # noqa: E402
from common.live.recorder import RECORDER, Recorder  # noqa: E402


def per_call(fn, n: int) -> float:
    """Seconds per call: the best of 5 rounds of n calls (the machine is shared)."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - started) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200_000)
    n = parser.parse_args().requests

    observe = per_call(lambda: RECORDER.observe_request("payment", 200, 0.0042), n)

    request = RequestFactory().post("/api/v1/payments/process")
    request.resolver_match = resolve("/api/v1/payments/process")
    response = HttpResponse(status=200)
    view = lambda _request: response  # noqa: E731
    bare = per_call(lambda: view(request), n)
    live = LiveMetricsMiddleware(view)
    with_live = per_call(lambda: live(request), n)
    whitenoise = WhiteNoiseMiddleware(view)
    with_whitenoise = per_call(lambda: whitenoise(request), n)

    busy = Recorder()
    second = int(time.time()) - 30
    fields = {f"{g}:{k}": 100 for g in ("queue", "checkout", "payment", "api", "other") for k in ("n", "2xx", "4xx")}
    fields.update({f"payment:l{i}": 10 for i in range(22)})
    flushes = []
    for _ in range(20):
        busy._buckets[second] = dict(fields)
        started = time.perf_counter()
        commands = busy.flush(everything=True)
        flushes.append(time.perf_counter() - started)

    print(f"observe_request:           {observe * 1e6:6.2f} µs per request")
    print(f"LiveMetricsMiddleware:     {(with_live - bare) * 1e6:6.2f} µs per request (middleware + observe)")
    print(f"WhiteNoiseMiddleware:      {(with_whitenoise - bare) * 1e6:6.2f} µs per request (non-static path)")
    print(
        f"flush of one busy second:  {min(flushes) * 1e3:6.2f} ms best, {sorted(flushes)[10] * 1e3:.2f} ms median "
        f"({commands} commands, one pipeline), on the flush thread, once a second per process"
    )


if __name__ == "__main__":
    main()
