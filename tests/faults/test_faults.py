"""Fault tests (`make test-faults`): a private copy of the whole system (tests/faults/stack.py) has
Redis stopped, the broker stopped, MariaDB restarted and its processes killed with -9 under load.
After each scenario the copy must have recovered with the same processes (only a kill -9'd process
is restarted, as a supervisor would) and `manage.py audit_invariants` must exit 0.

The scenarios share one copy and run in file order; each leaves it healthy for the next. Timings
are printed (`-s`) and written to .run-faults/logs/timings.json.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from tests.faults.effects import (
    assert_event_effects_once,
    assert_exactly_once,
    high_water,
    settle,
    unapplied_events,
    wait_confirmed,
)
from tests.faults.shoppers import Answer, Api, Seen, run_shoppers, stop_shoppers
from tests.faults.stack import Stack, running_stack

pytestmark = [pytest.mark.faults, pytest.mark.slow]

TIMINGS: dict[str, dict[str, float | str]] = {}
FLASH_PRODUCT = 1  # seed_demo: products 1..5 are flash-sale products
PUBLIC_READS = ["/products?size=5", "/products/7", "/products/popular", "/coupons", "/inventory/products/7"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    started = time.monotonic()
    with running_stack() as running:
        TIMINGS["setup"] = {"seconds": round(time.monotonic() - started, 1)}
        yield running
        path = running.log_dir / "timings.json"
        path.write_text(json.dumps(TIMINGS, indent=2))
        print(f"\nfault scenario timings: {json.dumps(TIMINGS)}")


@pytest.fixture(scope="module")
def tokens(stack) -> dict[int, str]:
    return stack.tokens("1-50")


def timed(name: str, **figures: float) -> None:
    TIMINGS.setdefault(name, {}).update({k: round(v, 2) for k, v in figures.items()})


# --- small steps ----------------------------------------------------------------------------------


def assert_retry_later(answer: Answer, code: str) -> None:
    assert answer.status == 503, (answer.status, answer.body)
    assert answer.code == code, answer.body
    assert int(answer.headers["Retry-After"]) >= 1


def assert_no_500(answers: dict[str, Answer]) -> None:
    """Any answer but a 500: a 503 must say when to retry."""
    for what, answer in answers.items():
        assert answer.status and answer.status != 500, (what, answer.status, answer.body)
        if answer.status == 503:
            assert "Retry-After" in answer.headers, what


def checkout_and_pay(api: Api, product_id: int = 20) -> int:
    """A synchronous checkout and its payment; returns the paid order's id."""
    order = api.call("POST", "/checkout/initiate", {"directOrderItems": [{"productId": product_id, "quantity": 1}]})
    assert order.status == 200, order.body
    paid = api.call(
        "POST", "/payments/process", {"orderId": order.data["orderId"], "amount": order.data["finalAmount"]}
    )
    assert paid.status == 200, paid.body
    return order.data["orderId"]


def order_status(stack: Stack, order_id: int) -> str:
    return stack.value("SELECT status FROM orders_order WHERE id = %s", (order_id,))


def queue_and_wait(stack: Stack, api: Api, product_id: int, timeout: float = 30) -> tuple[Answer, float]:
    """Queue a flash-sale checkout (retrying a 503 as a client would) and wait for the consumer's
    answer; returns (the 202 answer, seconds from the first try to the answer)."""
    started = time.monotonic()
    answer = stack.wait(
        lambda: (a := api.call("POST", "/checkout/queue", {"productId": product_id})).status != 503 and a,
        timeout=timeout,
        what="the queue to accept (503 QUEUE_UNAVAILABLE until the web's producer reconnects)",
        interval=0.5,
    )
    assert answer.status == 202, answer.body
    request_id = answer.data["requestId"]
    stack.wait(
        lambda: stack.value("SELECT status FROM orders_queuerequest WHERE request_id = %s", (request_id,)) != "QUEUED",
        timeout=timeout,
        what=f"queue request {request_id} to be answered",
    )
    return answer, time.monotonic() - started


def celery_expires_a_due_order(stack: Stack, api: Api) -> float:
    """The worker runs a task sent now: an unpaid order made due by hand is expired by it."""
    order = api.call("POST", "/checkout/initiate", {"directOrderItems": [{"productId": 30, "quantity": 1}]})
    assert order.status == 200, order.body
    order_id = order.data["orderId"]
    stack.sql("UPDATE orders_order SET expires_at = NOW(6) - INTERVAL 1 MINUTE WHERE id = %s", (order_id,))
    started = time.monotonic()
    stack.celery_call("orders.tasks.expire_due_orders")
    stack.wait(lambda: order_status(stack, order_id) == "EXPIRED", timeout=30, what="the worker to expire the order")
    return time.monotonic() - started


def recover(stack: Stack, what, timeout: float) -> float:
    started = time.monotonic()
    stack.wait(what, timeout=timeout, what=getattr(what, "__name__", "recovery"), interval=0.25)
    return time.monotonic() - started


def assert_same_processes(stack: Stack, before: dict[str, int | None]) -> None:
    after = stack.pids()
    dead = stack.dead()
    logs = "\n".join(f"--- {name} ---\n{stack.log(name, tail=60)}" for name in dead)
    assert after == before, f"processes died or were restarted: {before} -> {after}; exit codes {dead}\n{logs}"


# --- scenarios -------------------------------------------------------------------------------------


def test_redis_stopped_catalog_serves_from_the_database_and_everything_recovers(stack, tokens):
    api, other, public = Api(stack.url, tokens[1]), Api(stack.url, tokens[2]), Api(stack.url)
    for path in PUBLIC_READS:  # warm the caches: the outage must not serve from them only
        assert public.call("GET", path).status == 200
    before = stack.pids()

    down = stack.services("down", only="redis")
    started = time.monotonic()
    catalog = public.call("GET", "/products?size=5")
    assert catalog.status == 200 and len(catalog.data["contents"]) == 5, catalog.body
    assert public.call("GET", "/products/7").status == 200
    assert public.call("GET", "/inventory/products/7").status == 200
    assert_retry_later(api.call("POST", "/checkout/queue", {"productId": FLASH_PRODUCT}), "CACHE_UNAVAILABLE")
    # Throttled endpoints keep their rate counters in Redis: they refuse rather than run unlimited.
    assert_retry_later(api.call("POST", "/coupons/issue", {"couponId": 4}), "CACHE_UNAVAILABLE")
    token = Api(stack.url).call("POST", "/auth/token", {"username": "user1", "password": "flashsale-demo"})
    assert_retry_later(token, "CACHE_UNAVAILABLE")
    paid_order = checkout_and_pay(other)  # the database is the truth: checkout and payment still work
    readyz = requests.get(f"{stack.url}/readyz", timeout=5)
    assert readyz.status_code == 503 and readyz.json()["data"]["down"] == ["redis"], readyz.text
    answers = {path: public.call("GET", path) for path in PUBLIC_READS}
    answers |= {
        "balance": api.call("GET", "/points/1"),
        "orders": api.call("GET", "/orders"),
        "cart": api.call("GET", "/cart"),
        "ranking": public.call("GET", "/products/ranking/daily"),
    }
    assert_no_500(answers)
    outage = time.monotonic() - started

    up = stack.services("up", only="redis")

    def redis_features_back() -> bool:
        return api.call("POST", "/coupons/issue", {"couponId": 5}).status == 200 and stack.ready()

    recovered = recover(stack, redis_features_back, timeout=30)
    _, queued = queue_and_wait(stack, api, FLASH_PRODUCT)
    celery = celery_expires_a_due_order(stack, api)
    confirmed = wait_confirmed(stack, [paid_order], timeout=30)
    assert_same_processes(stack, before)
    stack.audit()
    timed(
        "redis_stopped",
        stop=down,
        outage_checks=outage,
        start=up,
        api_recovered_after=recovered,
        queue_answered_in=queued,
        celery_task_in=celery,
        outage_payment_confirmed_in=confirmed,
    )


def test_mariadb_restarted_requests_answer_503_then_everything_recovers(stack, tokens):
    api, public = Api(stack.url, tokens[5]), Api(stack.url)
    before = stack.pids()

    down = stack.services("down", only="mariadb")
    started = time.monotonic()
    assert_retry_later(api.call("GET", "/points/5"), "DATABASE_UNAVAILABLE")
    checkout = api.call("POST", "/checkout/initiate", {"directOrderItems": [{"productId": 40, "quantity": 1}]})
    assert_retry_later(checkout, "DATABASE_UNAVAILABLE")
    answers = {path: public.call("GET", path) for path in PUBLIC_READS}  # cached ones may still be 200
    answers["queue"] = api.call("POST", "/checkout/queue", {"productId": FLASH_PRODUCT})
    answers["payment"] = api.call("POST", "/payments/process", {"orderId": 1, "amount": 1})
    assert_no_500(answers)
    assert answers["queue"].status == 503 and answers["payment"].status == 503
    outage = time.monotonic() - started

    up = stack.services("up", only="mariadb")

    def api_back() -> bool:
        return api.call("GET", "/points/5").status == 200

    recovered = recover(stack, api_back, timeout=30)
    paid = checkout_and_pay(api, product_id=41)
    relay = wait_confirmed(stack, [paid], timeout=45)
    _, queued = queue_and_wait(stack, api, FLASH_PRODUCT, timeout=45)
    celery = celery_expires_a_due_order(stack, api)
    assert_same_processes(stack, before)
    stack.audit()
    timed(
        "mariadb_restarted",
        stop=down,
        outage_checks=outage,
        start=up,
        api_recovered_after=recovered,
        relay_and_consumer_in=relay,
        queue_answered_in=queued,
        celery_task_in=celery,
    )


def test_mariadb_restarted_under_load_loses_and_duplicates_nothing(stack, tokens):
    """Shoppers keep buying, paying, issuing coupons and queueing while MariaDB restarts: they get
    503s and retry with their Idempotency-Keys; afterwards every effect happened exactly once."""
    users = tuple(range(23, 35))
    last = high_water(stack)
    before = stack.pids()
    seen = Seen()
    started = time.monotonic()
    shoppers, stop = run_shoppers(stack.url, {uid: tokens[uid] for uid in users}, seen)
    time.sleep(3)
    down = stack.services("down", only="mariadb")
    time.sleep(1)
    up = stack.services("up", only="mariadb")
    time.sleep(5)
    stop_shoppers(shoppers, stop)
    load_seconds = time.monotonic() - started

    settled = settle(stack, seen, users, timeout=60)
    missed_by_kafka = unapplied_events(stack, wait=30)
    assert missed_by_kafka == [], f"outbox events the relay/consumers never applied: {missed_by_kafka[:5]}"
    counts = assert_exactly_once(stack, seen, users, last)
    assert_event_effects_once(stack, users, last)
    assert_same_processes(stack, before)
    stack.audit()
    refused = sum(n for (status, _), n in seen.retried.items() if status == 503)
    timed(
        "mariadb_restarted_under_load",
        load_seconds=load_seconds,
        stop=down,
        start=up,
        settle_seconds=settled,
        attempts_answered_503_then_retried=refused,
        unanswered_attempts=seen.unanswered,
        **counts,
    )


def test_kill_9_of_each_process_under_load_loses_and_duplicates_nothing(stack, tokens):
    users = tuple(range(11, 23))  # 12 shoppers, one user each
    last = high_water(stack)
    web_master = stack.pids()["web"]
    seen = Seen()
    started = time.monotonic()
    wall = time.time()
    shoppers, stop = run_shoppers(stack.url, {uid: tokens[uid] for uid in users}, seen)
    time.sleep(2)
    kills = {}
    for name in ("checkout", "relay", "outbox", "worker"):
        kills[name] = round(time.time(), 2)
        stack.kill9(name)
        time.sleep(0.5)
        stack.restart(name)
        time.sleep(1.0)
    workers = stack.child_pids("web")
    assert workers, "the web server has no workers"
    os.kill(workers[0], signal.SIGKILL)  # one web worker; granian respawns it (--respawn-failed-workers)
    kills["web worker"] = round(time.time(), 2)
    time.sleep(3)
    stop_shoppers(shoppers, stop)
    load_seconds = time.monotonic() - started

    settled = settle(stack, seen, users, timeout=45)  # every queued request answered, paid orders confirmed
    counts = assert_exactly_once(stack, seen, users, last, context=f"kills: {kills}")
    # The consumers store SSE events in the transaction of their effects: one per confirmed order even
    # across kills (only the live fan-out of a killed consumer's last commit can be lost).
    assert_event_effects_once(stack, users, last)
    missed_by_kafka = unapplied_events(stack, wait=20)
    if missed_by_kafka:  # the safety net must repair it; the count is reported
        stack.celery_call("outbox.tasks.outbox_fallback")
    assert unapplied_events(stack, wait=20) == [], "outbox events never applied, not even by the fallback"
    assert all(p.alive() for p in stack.processes.values()), stack.logs()
    assert stack.pids()["web"] == web_master and len(stack.child_pids("web")) == 2
    celery = celery_expires_a_due_order(stack, Api(stack.url, tokens[6]))
    stack.audit()
    timed(
        "kill_9_under_load",
        load_seconds=load_seconds,
        settle_seconds=settled,
        celery_task_in=celery,
        **counts,
        unanswered_attempts=seen.unanswered,
        events_left_to_the_fallback=len(missed_by_kafka),
        **{f"killed {name} at": at - wall for name, at in kills.items()},
    )


# Last: a broker restart that the Kafka clients do not get over must not spoil the other scenarios.
def test_broker_stopped_queue_refuses_sync_checkout_pays_and_events_follow(stack, tokens):
    try:
        broker_scenario(stack, tokens)
    except BaseException as exc:  # keep the reason in the timings report too
        timed("broker_stopped")
        TIMINGS["broker_stopped"]["failure"] = f"{type(exc).__name__}: {exc}"[:3000]
        print(f"\nbroker scenario failed: {TIMINGS['broker_stopped']['failure']}")
        raise


def broker_scenario(stack: Stack, tokens: dict[int, str]) -> None:
    api, payer = Api(stack.url, tokens[3]), Api(stack.url, tokens[4])
    before = stack.pids()
    # Every Kafka client holds a producer id of the broker about to restart (run alone, the scenario
    # would otherwise meet only producers created during the outage): both web workers' queue
    # producers (requests go to either), the relay's (an event delivered) and the consumers' groups.
    for product_id in (1, 2, 3, 4):  # flash products 1..5, one unit each: under FLASH_SALE_MAX_PER_USER
        queue_and_wait(stack, api, product_id)
    wait_confirmed(stack, [checkout_and_pay(payer, product_id=20)], timeout=30)

    timed("broker_stopped", stop=stack.services("down", only="kafka"))
    started = time.monotonic()
    refused = api.call("POST", "/checkout/queue", {"productId": FLASH_PRODUCT})
    timed("broker_stopped", queue_refused_in=time.monotonic() - started)
    assert_retry_later(refused, "QUEUE_UNAVAILABLE")
    assert stack.value("SELECT COUNT(*) FROM orders_queuerequest WHERE user_id = 3 AND status = 'QUEUED'") == 0
    paid_during_outage = [checkout_and_pay(payer, product_id=p) for p in (21, 22, 23, 24, 25)]
    assert all(order_status(stack, o) == "PAID" for o in paid_during_outage)  # follow-ups wait for the broker
    timed("broker_stopped", outage_checks=time.monotonic() - started)

    timed("broker_stopped", start=stack.services("up", only="kafka"))  # tansu keeps nothing: topics, offsets
    paid = [*paid_during_outage, checkout_and_pay(payer, product_id=26)]
    try:
        through_kafka: float | None = wait_confirmed(stack, paid, timeout=40)
        timed("broker_stopped", events_applied_by_relay_in=through_kafka)
    except AssertionError:
        through_kafka = None
        stack.celery_call("outbox.tasks.outbox_fallback")  # the safety net applies what CDC did not deliver
        timed("broker_stopped", events_applied_by_fallback_in=wait_confirmed(stack, paid, timeout=30))
    try:
        _, queued = queue_and_wait(stack, api, 5, timeout=45)
        timed("broker_stopped", queue_answered_in=queued)
        queue_stuck = None
    except AssertionError as exc:
        queue_stuck = exc
    assert_same_processes(stack, before)
    stack.audit()  # whatever path applied them, nothing was lost or applied twice
    assert through_kafka is not None, "relay/consumers did not deliver after the broker restart; the fallback had to"
    assert queue_stuck is None, f"the queue did not recover after the broker restart: {queue_stuck}"


# --- POST /checkout while the broker stops and restarts: failover, nothing lost, nothing doubled -----


@dataclass
class CheckoutCall:
    user_id: int
    key: str
    flash: bool
    answer: Answer


@dataclass
class CheckoutLog:
    calls: list[CheckoutCall] = field(default_factory=list)
    paid: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class CheckoutShopper(threading.Thread):
    """One user calling `POST /checkout` (a new Idempotency-Key per checkout, retried with the same key
    on no answer, a 502 or an in-flight key; a 503 is a final answer), every 4th on a flash-sale
    product, then paying what it got (a SYNC_FALLBACK order at once, a queued one once completed)."""

    def __init__(self, url: str, user_id: int, token: str, log: CheckoutLog, stop: threading.Event):
        super().__init__(daemon=True, name=f"checkout-shopper-{user_id}")
        self.api, self.user_id, self.log, self.stop = Api(url, token), user_id, log, stop
        self.random = random.Random(user_id)

    def run(self) -> None:
        rounds = 0
        while not self.stop.is_set():
            rounds += 1
            flash = rounds % 4 == 0
            product_id = self.random.randint(1, 5) if flash else self.random.randint(6, 100)
            key = str(uuid.uuid4())
            answer = Answer(0)
            for _ in range(80):
                answer = self.api.call(
                    "POST", "/checkout", {"items": [{"productId": product_id, "quantity": 1}]}, key=key
                )
                if answer.status not in (0, 502) and answer.code != "IDEMPOTENCY_KEY_IN_FLIGHT":
                    break
                time.sleep(0.25)
            with self.log.lock:
                self.log.calls.append(CheckoutCall(self.user_id, key, flash, answer))
            if answer.status == 200:
                self.pay(answer.data)
            elif answer.code == "INSUFFICIENT_BALANCE":
                self.top_up()

    def top_up(self) -> None:
        """What the storefront does when the points run out (the next checkout can be paid)."""
        self.api.retried("POST", f"/points/{self.user_id}/charge", {"amount": 1_000_000})

    def pay(self, accepted: dict) -> None:
        order = accepted.get("order")
        if order is None:  # queued: wait (a little) for the consumer's answer
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not self.stop.is_set():
                status = self.api.call("GET", f"/checkout/status/{accepted['requestId']}")
                if status.status == 200 and status.data["status"] != "QUEUED":
                    break
                time.sleep(0.2)
            else:
                return
            if status.data["status"] != "COMPLETED":
                if status.data["errorCode"] == "INSUFFICIENT_BALANCE":
                    self.top_up()
                return
            order = {"orderId": status.data["orderId"], "finalAmount": status.data["finalAmount"]}
        paid = self.api.retried(
            "POST", "/payments/process", {"orderId": order["orderId"], "amount": order["finalAmount"]}
        )
        if paid.status == 200:
            with self.log.lock:
                self.log.paid.add(order["orderId"])


def test_broker_stopped_checkout_fails_over_and_loses_or_doubles_nothing(stack, tokens):
    """Shoppers keep calling `POST /checkout` while the broker stops and restarts: every answer is a
    200 (queued, or served synchronously by failover) or, for a flash-sale product, a 503 (failover is
    refused there) or a business 409; every 200 ends in its order, one per Idempotency-Key."""
    users = tuple(range(36, 48))
    last = high_water(stack)
    before = stack.pids()
    log, stop = CheckoutLog(), threading.Event()
    shoppers = [CheckoutShopper(stack.url, uid, tokens[uid], log, stop) for uid in users]
    for shopper in shoppers:
        shopper.start()
    time.sleep(3)
    timed("checkout_failover", stop=stack.services("down", only="kafka"))
    time.sleep(5)
    timed("checkout_failover", start=stack.services("up", only="kafka"))
    time.sleep(8)
    stop.set()
    for shopper in shoppers:
        shopper.join(60)
        assert not shopper.is_alive(), f"{shopper.name} did not stop"

    marks = ",".join(["%s"] * len(users))
    waiting = (
        f"SELECT COUNT(*) FROM orders_queuerequest WHERE kind = 'ORDER' AND status = 'QUEUED' AND user_id IN ({marks})"
    )
    started = time.monotonic()
    stack.wait(
        lambda: stack.value(waiting, users) == 0,
        timeout=60,
        what="every queued checkout to be answered",
    )
    settled = time.monotonic() - started

    business = {"PURCHASE_LIMIT_EXCEEDED", "SOLD_OUT", "TOO_MANY_OPEN_ORDERS", "INSUFFICIENT_BALANCE"}
    odd = [
        (c.user_id, c.flash, c.answer.status, c.answer.body)
        for c in log.calls
        if not (
            c.answer.status == 200
            or (c.answer.status == 409 and c.answer.code in business)
            or (c.flash and c.answer.status == 503 and c.answer.code == "QUEUE_UNAVAILABLE")
        )
    ]
    assert not odd, odd[:5]
    ok = [c for c in log.calls if c.answer.status == 200]
    modes = {c.answer.data["mode"] for c in ok}
    assert modes == {"QUEUED", "SYNC_FALLBACK"}, modes
    assert any(c.flash and c.answer.status == 503 for c in log.calls), "no flash-sale request met the outage"

    rows = stack.sql(
        "SELECT CAST(request_id AS CHAR), idempotency_key, status, mode, order_id, error_code FROM orders_queuerequest "
        f"WHERE id > %s AND kind = 'ORDER' AND user_id IN ({marks})",
        (last["orders_queuerequest"], *users),
    )
    calls = {c.key: c for c in log.calls}
    assert len({key for _, key, *_ in rows}) == len(rows)  # one request per Idempotency-Key
    for request_id, key, status, mode, order_id, error_code in rows:
        answer = calls[key].answer  # every stored request belongs to a call (a 503 left nothing)
        assert status in ("COMPLETED", "FAILED") and (status == "COMPLETED") == (order_id is not None), request_id
        if answer.status == 200:
            assert answer.data["requestId"] == request_id
            if answer.data["mode"] == "SYNC_FALLBACK":
                assert (status, mode, order_id) == ("COMPLETED", "SYNC_FALLBACK", answer.data["order"]["orderId"])
        else:  # the synchronous checkout's own refusal, recorded on its request
            assert (answer.status, status, mode, error_code) == (409, "FAILED", "SYNC_FALLBACK", answer.code), key
    assert {c.answer.data["requestId"] for c in ok} <= {request_id for request_id, *_ in rows}  # none lost
    orders = {
        row[0]
        for row in stack.sql(
            f"SELECT id FROM orders_order WHERE id > %s AND user_id IN ({marks})", (last["orders_order"], *users)
        )
    }
    served = {order_id for _, _, _, _, order_id, _ in rows if order_id is not None}
    assert orders == served  # no order without its request, none twice (order_id is unique per request)
    assert_same_processes(stack, before)
    stack.audit()
    fallback = sum(1 for c in ok if c.answer.data["mode"] == "SYNC_FALLBACK")
    timed(
        "checkout_failover",
        calls=len(log.calls),
        answered_200=len(ok),
        sync_fallback=fallback,
        flash_503=sum(1 for c in log.calls if c.answer.status == 503),
        paid=len(log.paid),
        settle_seconds=settled,
    )
