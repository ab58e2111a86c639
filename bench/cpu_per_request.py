"""Whole-stack CPU per request, by endpoint: what one request costs every process of the system.

    python bench/cpu_per_request.py --tokens tokens.json [--base http://127.0.0.1:8000] [-n 500]
                                    [--vus 50] [--only product,checkout_pay] [--out result.json]

For each endpoint it sends N requests, first one after another on one kept-alive connection, then
(with `--vus`) from that many concurrent k6 virtual users, and reads the CPU ticks (user + system,
from /proc) of every process of the system before and after: the web server, the SSE server, the
proxy, the Celery worker and beat, the checkout and outbox consumers, the CDC relay, MariaDB, Redis
and the broker. What the stack burns while idle (measured first, per process) is subtracted, so
the figure is the work the requests caused, wherever it ran. `checkout_pay` is a direct checkout
followed by its payment; its run ends only when every order it paid is CONFIRMED by the outbox
pipeline (relay -> broker -> outbox consumer), so the pipeline's work is counted too.

CPU seconds hold on a busy machine where wall-clock figures do not; still run it on a quiet one.
Processes are found from the stack's pid file (`$RUN_DIR/stack.pid`, the honcho process tree) and
the local services' pid files under `$RUN_DIR`; `--stack-pid` overrides the first.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstats import TICKS, descends_from, read_proc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
K6 = ROOT / ".venv" / "bin" / "k6"
PROBE = ROOT / "k6" / "cpu-probe.js"

# (needle in the command line, role); the first match wins.
STACK_ROLES = (
    ("nginx", "proxy"),
    ("gunicorn", "web"),
    ("granian", "web"),
    ("uvicorn", "sse"),
    ("celery -A config worker", "celery"),
    ("celery -A config beat", "beat"),
    ("run_consumer checkout", "checkout"),
    ("run_consumer outbox", "outbox"),
    ("outbox_relay", "relay"),
)
SERVICE_PIDFILES = {"mariadb": "mariadb/mariadbd.pid", "redis": "redis/redis.pid", "broker": "tansu/tansu.pid"}
ROLES = ("web", "proxy", "mariadb", "redis", "broker", "relay", "outbox", "checkout", "celery", "beat", "sse")


@dataclass
class Stack:
    stack_pid: int
    services: dict[str, int]

    def ticks(self) -> dict[str, int]:
        """Role -> CPU ticks of all its processes (and their threads) now."""
        procs = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (info := read_proc(int(entry))) is not None:
                procs[int(entry)] = info
        parents = {pid: info[1] for pid, info in procs.items()}
        totals: dict[str, int] = defaultdict(int)
        for pid, (_comm, _ppid, ticks, _rss, cmdline) in procs.items():
            role = None
            for name, root in self.services.items():
                if descends_from(pid, root, parents):
                    role = name
            if role is None and descends_from(pid, self.stack_pid, parents):
                role = next((r for needle, r in STACK_ROLES if needle in cmdline), None)
            if role is not None:
                totals[role] += ticks
        return totals


def find_stack(run_dir: Path, stack_pid: int | None) -> Stack:
    pid = stack_pid or int((run_dir / "stack.pid").read_text().strip())
    services = {}
    for role, relative in SERVICE_PIDFILES.items():
        path = run_dir / relative
        if path.exists():
            services[role] = int(path.read_text().strip())
    return Stack(pid, services)


@dataclass
class Client:
    """One kept-alive HTTP/1.1 connection."""

    base: str
    conn: http.client.HTTPConnection = field(init=False)

    def __post_init__(self) -> None:
        url = urlsplit(self.base)
        self.conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=30)

    def call(self, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
        response = self.conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, {}


# --- endpoints: (label, function(client, tokens, i) -> status, concurrent probe name) ---------------

PRODUCT_ID = 42  # an ordinary product with plenty of stock (flash products are 1..5)
COUPON_ID = 4  # a plentiful coupon: an issue succeeds once per user
SOLD_OUT_COUPON_ID = 10  # 5 units, issued before the run: every request is 409 COUPON_SOLD_OUT (most of an event's)


def _user(tokens: dict[str, str], i: int) -> tuple[int, str]:
    ids = sorted(tokens, key=int)
    user = ids[i % len(ids)]
    return int(user), tokens[user]


def ep_healthz(c: Client, tokens, i):
    return c.call("GET", "/healthz")[0]


def ep_product(c: Client, tokens, i):
    return c.call("GET", f"/api/v1/products/{PRODUCT_ID}")[0]


def ep_popular(c: Client, tokens, i):
    return c.call("GET", "/api/v1/products/popular?limit=10")[0]


def ep_points(c: Client, tokens, i):
    user, token = _user(tokens, i)
    return c.call("GET", f"/api/v1/points/{user}", token)[0]


def ep_cart_view(c: Client, tokens, i):
    user, token = _user(tokens, i)
    return c.call("GET", f"/api/v1/cart?userId={user}", token)[0]


def ep_cart_add(c: Client, tokens, i):
    user, token = _user(tokens, i)
    return c.call("POST", f"/api/v1/cart/items?userId={user}", token, {"productId": PRODUCT_ID, "quantity": 1})[0]


def ep_coupon_issue(c: Client, tokens, i):
    user, token = _user(tokens, i)
    return c.call("POST", f"/api/v1/coupons/issue?userId={user}", token, {"couponId": COUPON_ID})[0]


def ep_coupon_sold_out(c: Client, tokens, i):
    user, token = _user(tokens, i)
    return c.call("POST", f"/api/v1/coupons/issue?userId={user}", token, {"couponId": SOLD_OUT_COUPON_ID})[0]


def ep_checkout_pay(c: Client, tokens, i):
    user, token = _user(tokens, i)
    items = [{"productId": PRODUCT_ID, "quantity": 1}]
    status, body = c.call("POST", "/api/v1/checkout/initiate", token, {"userId": user, "directOrderItems": items})
    if status != 200:
        return status
    order = body["data"]
    pay = {"orderId": order["orderId"], "userId": user, "amount": order["finalAmount"], "paymentMethod": "BALANCE"}
    status, _ = c.call("POST", "/api/v1/payments/process", token, pay)
    return status


ENDPOINTS = {
    "healthz": ep_healthz,
    "product": ep_product,
    "popular": ep_popular,
    "points": ep_points,
    "cart_view": ep_cart_view,
    "cart_add": ep_cart_add,
    "coupon_issue": ep_coupon_issue,
    "coupon_sold_out": ep_coupon_sold_out,
    "checkout_pay": ep_checkout_pay,
}


BROKEN = {401, 403, 429}  # answers that mean the run, not the endpoint, went wrong (as does any 5xx)

TOP_UP = """
from shop.models import PointWallet
from shop.services.wallet import points_charge
for user_id in PointWallet.objects.filter(balance__lt={low}).values_list("user_id", flat=True):
    points_charge(user_id=user_id, amount={amount}, description="cpu_per_request top-up")
"""

SELL_OUT = """
from django.utils import timezone
from shop.errors import CouponSoldOut
from shop.services.coupons import coupon_issue
for user_id in range(1, 100):
    try:
        coupon_issue(coupon_id={coupon}, user_id=user_id, now=timezone.now())
    except CouponSoldOut:
        break  # refused by the database, which set the sold-out flag
"""


def reset_for(name: str) -> None:
    """Make every request of a run do the same work: coupons re-issuable, wallets that can pay (so that
    earlier runs do not turn pairs into 409 INSUFFICIENT_BALANCE)."""
    if name == "coupon_issue":
        manage("reset_coupons", "--ids", str(COUPON_ID), "--reopen")
    if name == "coupon_sold_out":  # sold out through the service, as in an event
        manage("reset_coupons", "--ids", str(SOLD_OUT_COUPON_ID), "--reopen")
        manage("shell", "-c", SELL_OUT.format(coupon=SOLD_OUT_COUPON_ID))
    if name == "checkout_pay":
        manage("shell", "-c", TOP_UP.format(low=500_000, amount=1_000_000))


def manage(*args: str) -> str:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "manage.py", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def unconfirmed_paid_orders() -> int:
    """PAID orders the outbox pipeline has not confirmed yet (read with the dev stack's settings)."""
    out = manage(
        "shell",
        "-c",
        "from orders.models import Order; print(Order.objects.filter(status='PAID').count())",
    )
    return int(out.strip().splitlines()[-1])


def wait_pipeline(name: str, timeout: float = 120.0) -> None:
    if name != "checkout_pay":
        return
    deadline = time.monotonic() + timeout
    while unconfirmed_paid_orders() and time.monotonic() < deadline:
        time.sleep(0.2)


@dataclass
class Result:
    name: str
    mode: str
    n: int
    seconds: float
    statuses: dict[int, int]
    cpu_ms: dict[str, float]  # role -> ms per request, idle subtracted
    wall_median_ms: float | None = None

    @property
    def total(self) -> float:
        return sum(self.cpu_ms.values())


def measure(stack: Stack, idle_rate: dict[str, float], name: str, mode: str, run) -> Result:
    reset_for(name)
    before, started = stack.ticks(), time.monotonic()
    n, statuses, walls = run()
    wait_pipeline(name)
    after, elapsed = stack.ticks(), time.monotonic() - started
    cpu = {}
    for role in ROLES:
        used = (after.get(role, 0) - before.get(role, 0)) / TICKS - idle_rate.get(role, 0.0) * elapsed
        cpu[role] = max(used, 0.0) * 1000 / n
    median = statistics.median(walls) if walls else None
    return Result(name, mode, n, elapsed, statuses, cpu, median)


def sequential(base: str, tokens: dict[str, str], fn, n: int):
    def run():
        client, walls, statuses = Client(base), [], defaultdict(int)
        for i in range(n):
            t0 = time.perf_counter()
            statuses[fn(client, tokens, i)] += 1
            walls.append((time.perf_counter() - t0) * 1000)
        return n, dict(statuses), walls

    return run


def concurrent(base: str, tokens_file: str, name: str, n: int, vus: int):
    def run():
        summary = Path(f"/tmp/cpu-probe-{os.getpid()}.json")
        subprocess.run(
            [str(K6), "run", "-q", "--address", "127.0.0.1:0", "-e", f"BASE_URL={base}", "-e", f"TOKENS={tokens_file}",
             "-e", f"ENDPOINT={name}", "-e", f"VUS={vus}", "-e", f"ITERATIONS={n}", "-e", f"OUT={summary}",
             "-e", f"PRODUCT_ID={PRODUCT_ID}", "-e", f"COUPON_ID={COUPON_ID}",
             "-e", f"SOLD_OUT_COUPON_ID={SOLD_OUT_COUPON_ID}", str(PROBE)],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        statuses = {int(k): v for k, v in json.loads(summary.read_text())["statuses"].items()}
        summary.unlink()
        return n, statuses, []

    return run


def idle_rates(stack: Stack, seconds: float) -> dict[str, float]:
    before = stack.ticks()
    time.sleep(seconds)
    after = stack.ticks()
    return {role: (after.get(role, 0) - before.get(role, 0)) / TICKS / seconds for role in ROLES}


def table(results: list[Result], idle: dict[str, float]) -> Iterator[str]:
    shown = [r for r in ROLES if any(res.cpu_ms.get(r, 0) >= 0.005 for res in results) or idle.get(r, 0) > 0.001]
    yield "| endpoint | mode | total CPU ms/req | " + " | ".join(shown) + " | seq. median ms | statuses |"
    yield "|---|---|---:|" + "---:|" * len(shown) + "---:|---|"
    for r in results:
        cells = " | ".join(f"{r.cpu_ms.get(role, 0):.2f}" for role in shown)
        wall = f"{r.wall_median_ms:.2f}" if r.wall_median_ms is not None else ""
        yield f"| {r.name} | {r.mode} | **{r.total:.2f}** | {cells} | {wall} | {r.statuses} |"
    idle_cells = " | ".join(f"{100 * idle.get(role, 0):.1f} %" for role in shown)
    yield f"| idle (% of one core) | | **{100 * sum(idle.values()):.1f} %** | {idle_cells} | | |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=f"http://127.0.0.1:{os.environ.get('WEB_PORT', '8000')}")
    parser.add_argument("--tokens", required=True, help="JSON {userId: access token} (manage.py issue_tokens)")
    parser.add_argument("--run-dir", default=os.environ.get("RUN_DIR", str(ROOT / ".run")))
    parser.add_argument("--stack-pid", type=int)
    parser.add_argument("-n", type=int, default=500, help="requests per endpoint and mode")
    parser.add_argument("--vus", type=int, default=0, help="also run each endpoint from this many k6 VUs")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--only", help="comma-separated endpoint names: " + ", ".join(ENDPOINTS))
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    stack = find_stack(Path(args.run_dir).resolve(), args.stack_pid)
    tokens = json.loads(Path(args.tokens).read_text())
    names = args.only.split(",") if args.only else list(ENDPOINTS)
    wait_pipeline("checkout_pay")
    idle = idle_rates(stack, args.idle_seconds)
    results = []
    for name in names:
        fn = ENDPOINTS[name]
        sequential(args.base, tokens, fn, 20)()  # warm up connections and caches
        results.append(measure(stack, idle, name, "sequential", sequential(args.base, tokens, fn, args.n)))
        if args.vus:
            run = concurrent(args.base, str(Path(args.tokens).resolve()), name, args.n, args.vus)
            results.append(measure(stack, idle, name, f"{args.vus} VUs", run))
        print(f"[cpu] {name}: {results[-1].total:.2f} ms per request ({results[-1].mode})", file=sys.stderr)
    load = os.getloadavg()
    print(f"load average before/after: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min)")
    for line in table(results, idle):
        print(line)
    if args.out:
        rows = [r.__dict__ | {"total": r.total} for r in results]
        Path(args.out).write_text(json.dumps({"load_average": load, "idle_cores": idle, "results": rows}, indent=2))
    broken = [
        f"{r.name} ({r.mode}): {r.statuses}"
        for r in results
        if any(int(s) in BROKEN or int(s) >= 500 for s in r.statuses) or sum(r.statuses.values()) < args.n
    ]
    if broken:  # e.g. expired tokens (make tokens): the CPU of a 401 is not the endpoint's; a 409 is a business answer
        sys.exit(
            "[cpu] requests were refused by auth, throttling or errors, or not all answered; "
            "these figures are not the endpoints': " + "; ".join(broken)
        )


if __name__ == "__main__":
    main()
