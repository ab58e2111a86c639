"""Event pipeline latency against a running stack: payment commit -> order CONFIRMED, and payment
commit -> the `order-completed` SSE event received by a client connected to the SSE process.

    python bench/pipeline_latency.py [--rate 200] [--seconds 20] [--procs 4] [--threads 4] [--users 50]
                                     [--products 20] [--sse-base http://127.0.0.1:$SSE_PORT] [--out result.json]

Run it with the stack's environment (`make up`; the same DB_NAME, REDIS_URL, KAFKA_* and RUN_DIR).
1. Prepares `rate x seconds` orders (one unit of one of `--products` cheap ordinary products each,
   for `--users` users from `--first-user` on, their wallets topped up): `checkout_initiate`, as the
   API does, before the measured part.
2. Opens one SSE stream per user (`GET /api/sse/subscribe/<id>?token=`, what a browser's EventSource
   does) and waits until each delivers a live `warm-up` event.
3. Pays them from `--procs` processes of `--threads` threads at `--rate` per second in total
   (`payment_process`, the service behind `POST /api/v1/payments/process`; the commit time is taken
   when it returns; the payers' own CPU is not counted), then waits until every order is CONFIRMED
   and every `order-completed` event arrived (or `--timeout`).
4. Prints p50/p95/max of commit -> `confirmed_at` (set by the outbox consumer inside its transaction)
   and of commit -> receipt by the SSE client, and the CPU per event (ms, the idle rate measured just
   before subtracted) of the relay, the outbox consumer, the broker, MariaDB, Redis and the SSE process.

The shared services' CPU includes whatever else uses them: on a shared machine read it as an upper
bound, and compare runs of the same sitting. The payments, orders and SSE events it makes stay in the
stack's database (a development database; `make seed` leaves them alone).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle_cpu import service_ports, ticks  # noqa: E402
from procstats import TICKS, django_setup, percentile  # noqa: E402

ROLES = ("relay", "outbox", "broker", "mariadb", "redis", "sse", "celery")


class SseClient(threading.Thread):
    """One user's stream: records when each event arrived, by type and order id."""

    def __init__(self, base: str, user_id: int, token: str):
        super().__init__(name=f"sse-{user_id}", daemon=True)
        url = urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=120)
        self.path = f"/api/sse/subscribe/{user_id}?token={token}"
        self.user_id = user_id
        self.warm = threading.Event()
        self.completed: dict[int, float] = {}  # order id -> receipt time
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.conn.request("GET", self.path, headers={"Accept": "text/event-stream"})
            response = self.conn.getresponse()
            if response.status != 200:
                raise RuntimeError(f"SSE subscribe for user {self.user_id}: HTTP {response.status}")
            kind, data = "message", []
            while True:
                raw = response.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "":
                    if kind == "order-completed" and data:
                        self.completed[int(json.loads("\n".join(data))["orderId"])] = time.time()
                    elif kind == "warm-up":
                        self.warm.set()
                    kind, data = "message", []
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def close(self) -> None:
        try:
            self.conn.sock and self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()


def in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run work(lane) on `count` threads; re-raise the first failure."""
    from django.db import connection

    errors: list[BaseException] = []

    def lane(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=lane, args=(n,)) for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]


def prepare(args) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Users and orders to pay: [(order id, user id, amount)]."""
    from inventory.services import stock_set_available
    from orders.services import LineRequest, checkout_initiate
    from shop.models import PointWallet, Product, User
    from shop.services.wallet import points_charge

    total = int(args.rate * args.seconds)
    users = list(
        User.objects.filter(pk__gte=args.first_user, is_active=True).order_by("pk").values_list("pk", flat=True)
    )
    users = users[: args.users]
    products = list(
        Product.objects.filter(status=Product.Status.ACTIVE, pk__gt=5)
        .order_by("price", "pk")
        .values_list("pk", "price")
    )[: args.products]
    if len(users) < args.users or not products:
        raise SystemExit("not enough users or products: run `make seed` first")
    stock_set_available(product_ids=[pk for pk, _ in products], available=total)
    per_user = -(-total // len(users)) * max(price for _, price in products)
    for user_id in users:
        balance = PointWallet.objects.filter(user_id=user_id).values_list("balance", flat=True).first() or 0
        if balance < per_user:
            points_charge(user_id=user_id, amount=per_user - balance, description="bench/pipeline_latency")
    orders: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def create(lane: int) -> None:
        for n in range(lane, total, args.threads):
            user_id, (product_id, _) = users[n % len(users)], products[n % len(products)]
            order = checkout_initiate(user_id=user_id, direct_items=[LineRequest(product_id, 1)])
            with lock:
                orders.append((order.pk, user_id, order.final_amount))

    started = time.monotonic()
    in_threads(args.threads, create)
    print(f"[pipeline] {len(orders)} orders prepared in {time.monotonic() - started:.1f} s", file=sys.stderr)
    orders.sort()
    return users, orders


def open_streams(base: str, users: list[int], timeout: float = 30.0) -> list[SseClient]:
    from django.db import connection

    from common.sse.push import sse_push
    from common.sse.views import sse_token_issue

    clients = [SseClient(base, user_id, sse_token_issue(user_id=user_id)) for user_id in users]
    for client in clients:
        client.start()
    deadline = time.monotonic() + timeout
    while not all(c.warm.is_set() for c in clients):  # the SSE process subscribes to Redis lazily
        for client in clients:
            if client.error is not None:
                raise client.error
            if not client.warm.is_set():
                sse_push(client.user_id, "warm-up", {"at": time.time()})
        if time.monotonic() > deadline:
            raise SystemExit("SSE streams did not deliver a warm-up event in time")
        time.sleep(0.3)
    connection.close()
    return clients


def pay(orders: list[tuple[int, int, int]], *, rate: float, threads: int, procs: int) -> tuple[dict[int, float], float]:
    """Pay the orders at `rate` per second in total from `procs` processes of `threads` threads (one
    Python process cannot call the payment service much beyond ~80/s). Returns order id -> commit
    time, and how long paying took."""
    from django.db import connections

    lanes = threads * procs
    interval = lanes / rate
    connections.close_all()  # the children open their own
    started = time.monotonic() + 0.5  # a shared start, once every child is up
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def child(first: int) -> None:
        from payments.services import payment_process

        committed: dict[int, float] = {}

        def lane(n: int) -> None:
            for k, (order_id, user_id, amount) in enumerate(orders[first + n :: lanes]):
                delay = started + k * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                payment_process(user_id=user_id, order_id=order_id, amount=amount)
                committed[order_id] = time.time()

        try:
            in_threads(threads, lane)
            results.put(("ok", committed))
        except BaseException as exc:  # noqa: BLE001 - reported by the parent
            results.put(("error", repr(exc)))

    children = [context.Process(target=child, args=(n * threads,)) for n in range(procs)]
    for process in children:
        process.start()
    committed: dict[int, float] = {}
    for _ in children:
        kind, value = results.get()
        if kind == "error":
            raise SystemExit(f"a payer failed: {value}")
        committed.update(value)
    for process in children:
        process.join()
    return committed, time.monotonic() - started


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * percentile(ordered, 0.95), 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


def describe(name: str, s: dict[str, float]) -> str:
    if not s.get("n"):
        return f"{name}: nothing measured"
    return f"{name}: p50 {s['p50_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms, max {s['max_ms']:.0f} ms (n={s['n']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="payments per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=4, help="payer threads per process")
    parser.add_argument("--procs", type=int, default=4, help="payer processes")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--first-user", type=int, default=901)
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--sse-base", default=f"http://127.0.0.1:{os.environ.get('SSE_PORT', '8001')}")
    parser.add_argument("--run-dir", default=os.environ.get("RUN_DIR", ".run"))
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the last effects")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    django_setup()
    from orders.models import Order

    stack_pid = int((Path(args.run_dir) / "stack.pid").read_text().strip())
    ports = service_ports()
    users, orders = prepare(args)
    clients = open_streams(args.sse_base, users)

    before, started = ticks(stack_pid, ports), time.monotonic()
    time.sleep(args.idle_seconds)
    idle_after, idle_elapsed = ticks(stack_pid, ports), time.monotonic() - started
    idle = {r: (idle_after.get(r, 0) - before.get(r, 0)) / TICKS / idle_elapsed for r in idle_after}

    load_before = os.getloadavg()[0]
    before, started = ticks(stack_pid, ports), time.monotonic()
    committed, paying = pay(orders, rate=args.rate, threads=args.threads, procs=args.procs)
    ids = [order_id for order_id, _, _ in orders]
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        confirmed = Order.objects.filter(pk__in=ids, status="CONFIRMED").count()
        received = sum(len(c.completed) for c in clients)
        if confirmed == len(ids) and received >= len(ids):
            break
        time.sleep(0.2)
    after, elapsed = ticks(stack_pid, ports), time.monotonic() - started
    load_after = os.getloadavg()[0]
    for client in clients:
        client.close()

    confirmed_at = dict(Order.objects.filter(pk__in=ids, confirmed_at__isnull=False).values_list("pk", "confirmed_at"))
    received_at: dict[int, float] = {}
    for client in clients:
        received_at.update(client.completed)
    to_confirmed = summary([confirmed_at[pk].timestamp() - committed[pk] for pk in ids if pk in confirmed_at])
    to_sse = summary([received_at[pk] - committed[pk] for pk in ids if pk in received_at])
    cpu_ms = {
        role: round(
            1000 * ((after.get(role, 0) - before.get(role, 0)) / TICKS - idle.get(role, 0.0) * elapsed) / len(ids), 3
        )
        for role in ROLES
    }
    rate = len(ids) / paying
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    print(f"{len(ids)} payments at {rate:.0f}/s (target {args.rate:.0f}/s) from {args.procs} x {args.threads} threads")
    print(describe("payment commit -> CONFIRMED", to_confirmed))
    print(describe("payment commit -> SSE order-completed received", to_sse))
    for what, got in (("orders not CONFIRMED", to_confirmed), ("SSE events not received", to_sse)):
        if (missing := len(ids) - got.get("n", 0)) > 0:
            print(f"  {missing} {what} within {args.timeout:.0f} s")
    print("CPU per event (ms; idle subtracted): " + ", ".join(f"{r} {v:.2f}" for r, v in cpu_ms.items()))
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "rate": rate,
                    "target_rate": args.rate,
                    "payments": len(ids),
                    "load_average": [load_before, load_after],
                    "commit_to_confirmed": to_confirmed,
                    "commit_to_sse": to_sse,
                    "cpu_ms_per_event": cpu_ms,
                    "idle_cores": idle,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
