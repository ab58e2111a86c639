"""Server CPU per request, by endpoint: what one request costs the web workers, whatever the load.

    python bench/cpu_per_request.py --base http://127.0.0.1:8000 --tokens tokens.json --stack-pid PID [-n 200]

Sends N sequential requests per endpoint and reads the CPU ticks (user + system) of the gunicorn
processes under the stack's process tree before and after, so the figure holds on a busy machine
where wall-clock latency does not. Also reports the sequential median wall time. Writes Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstats import TICKS, descends_from, read_proc  # noqa: E402


def gunicorn_ticks(stack_pid: int) -> int:
    procs = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := read_proc(int(entry.name))) is not None:
            procs[int(entry.name)] = info
    parents = {pid: info[1] for pid, info in procs.items()}
    return sum(
        info[2] for pid, info in procs.items() if "gunicorn" in info[4] and descends_from(pid, stack_pid, parents)
    )


def call(base: str, method: str, path: str, token: str | None, body: dict | None) -> int:
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def endpoints(user: int, product: int):
    yield "healthz (no Django view work)", "GET", "/healthz", None
    yield "product", "GET", f"/api/v1/products/{product}", None
    yield "popular", "GET", "/api/v1/products/popular?limit=10", None
    yield "points", "GET", f"/api/v1/points/{user}", None
    yield "cart_view", "GET", f"/api/v1/cart?userId={user}", None
    yield "cart_add", "POST", f"/api/v1/cart/items?userId={user}", {"productId": product, "quantity": 1}
    yield "coupon_issue (409)", "POST", f"/api/v1/coupons/issue?userId={user}", {"couponId": 1}
    items = [{"productId": product, "quantity": 1}]
    yield "checkout", "POST", "/api/v1/checkout/initiate", {"userId": user, "directOrderItems": items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--stack-pid", type=int, required=True)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--user", type=int, default=999)
    args = parser.parse_args()
    token = json.loads(Path(args.tokens).read_text())[str(args.user)]
    print("| endpoint | server CPU ms/request (gunicorn) | sequential median ms | statuses |")
    print("|---|---:|---:|---|")
    for label, method, path, body in endpoints(args.user, 42):
        walls, statuses = [], set()
        auth = token if ("userId" in path or "points" in path or body) else None
        before = gunicorn_ticks(args.stack_pid)
        for _ in range(args.n):
            started = time.perf_counter()
            statuses.add(call(args.base, method, path, auth, body))
            walls.append((time.perf_counter() - started) * 1000)
        cpu_ms = (gunicorn_ticks(args.stack_pid) - before) / TICKS * 1000 / args.n
        print(f"| {label} | {cpu_ms:.1f} | {statistics.median(walls):.1f} | {sorted(statuses)} |")


if __name__ == "__main__":
    main()
