"""Cluster test (`make test-cluster`): every process twice against one MariaDB, one Redis and
one broker (a private copy on 3337/6410/9112, see tests/faults/stack.py): two API instances, two SSE
servers, two Celery workers, two checkout consumers and two outbox consumers in the same groups, two
CDC relays, and exactly one Celery beat.

1. The same mixed load (synchronous checkouts, payments, coupon issues, queued flash-sale checkouts;
   shoppers that retry with their Idempotency-Key) runs first on a single-instance copy, then on the
   cluster, for the throughput comparison.
2. On the cluster, during the load: kill -9 of the relay holding the single-relay lock (the standby
   must take over from the shared checkpoint), then kill -9 of one checkout consumer (its partitions
   must move to the other). Afterwards: nothing lost or duplicated, every queue request answered
   once, every event's effects applied once, `audit_invariants` clean.
3. SSE reaches the shopper whichever SSE instance they are connected to (before the load, which
   sells the flash products out).

Figures are printed (`-s`) and written to .run-cluster/logs/cluster-report.json.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from tests.faults.effects import (
    applied_event_ids,
    assert_event_effects_once,
    assert_exactly_once,
    high_water,
    settle,
    unapplied_events,
)
from tests.faults.shoppers import Api, Seen, run_shoppers, stop_shoppers
from tests.faults.stack import Stack, running_stack
from tests.support.sse import Stream

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

COPY = {
    "run_dir": ".run-cluster",
    **{"db_port": 3337, "redis_port": 6410, "kafka_port": 9112},
    "sse": True,
    # The beat's fallback (every 60 s) takes only events older than this: anything it applies was
    # lost by the relay/consumer path, and the test requires that to be nothing.
    "settings": {"OUTBOX_FALLBACK_AFTER_SECONDS": "30"},
}
SHOPPERS = range(11, 35)  # 24 users, one thread each
WARM_UP_USER = 35
LOAD_SECONDS = 45
KILL_RELAY_AT, KILL_CHECKOUT_AT = 10, 25  # seconds into the cluster's load
REPORT: dict[str, dict] = {}


def warm_up(stack: Stack, token: str) -> None:
    """One paid order and one coupon before the load: the event topics exist (the relay creates them
    on first use) and every consumer holds its partitions, as in a deployment that has run before."""
    api = Api(stack.urls[0], token)
    order = api.call("POST", "/checkout/initiate", {"directOrderItems": [{"productId": 50, "quantity": 1}]})
    assert order.status == 200, order.body
    paid = api.call(
        "POST", "/payments/process", {"orderId": order.data["orderId"], "amount": order.data["finalAmount"]}
    )
    assert paid.status == 200, paid.body
    assert api.call("POST", "/coupons/issue", {"couponId": 6}).status == 200
    stack.wait(
        lambda: stack.value("SELECT status FROM orders_order WHERE id = %s", (order.data["orderId"],)) == "CONFIRMED",
        timeout=60,
        what="the warm-up order to be CONFIRMED through the relay and an outbox consumer",
    )


def mixed_load(stack: Stack, tokens: dict[int, str], *, seconds: float, events=()) -> dict:
    """Run the shoppers over every API instance for `seconds`, doing `events` ((at, fn) pairs) on
    the way; then wait for quiescence and check every effect happened exactly once."""
    users = tuple(SHOPPERS)
    warm_up(stack, tokens[WARM_UP_USER])
    last = high_water(stack)
    since = datetime.now(UTC).replace(tzinfo=None)
    cpu_before, ops_before = stack.cpu_seconds(), service_operations(stack)
    seen = Seen()
    shoppers, stop = run_shoppers(stack.urls, {u: tokens[u] for u in users}, seen)
    started = time.monotonic()
    figures: dict = {}
    for at, event in events:
        time.sleep(max(0.0, started + at - time.monotonic()))
        figures.update(event(stack))
    time.sleep(max(0.0, started + seconds - time.monotonic()))
    stop_shoppers(shoppers, stop)
    load_seconds = time.monotonic() - started

    figures["settle_seconds"] = round(settle(stack, seen, users), 2)
    cpu = cpu_by_kind(cpu_before, stack.cpu_seconds())
    ops = {name: after - ops_before[name] for name, after in service_operations(stack).items()}
    missing = unapplied_events(stack, wait=30)
    assert missing == [], f"outbox events never applied through Kafka: {missing[:5]}"
    counts = assert_exactly_once(stack, seen, users, last)
    assert_event_effects_once(stack, users, last)
    stack.audit()
    assert fallback_applied(stack) == 0, "the relay/consumer path lost events the fallback had to apply: " + "; ".join(
        fallback_lines(stack)
    )
    answered = sum(n for (what, status, _), n in seen.statuses.items() if status and status < 500)
    events = stack.value("SELECT COUNT(*) FROM outbox_event WHERE created_at >= %s", (since,))
    return {
        **figures,
        **counts,
        "outbox_events": events,
        "cpu_seconds": {kind: round(seconds, 1) for kind, seconds in cpu.items()},
        "cpu_ms_per_unit": {
            "web per request": round(1000 * cpu["web"] / answered, 2),
            "checkout consumer per queue request": round(1000 * cpu["checkout"] / counts["queue_requests"], 2),
            "relay per event": round(1000 * cpu["relay"] / events, 2),
            "outbox consumer per event": round(1000 * cpu["outbox"] / events, 2),
            "mariadb per request": round(1000 * cpu["mariadb"] / answered, 2),
            "redis per request": round(1000 * cpu["redis"] / answered, 3),
        },
        "per_request": {name: round(count / answered, 1) for name, count in ops.items()},
        "load_seconds": round(load_seconds, 1),
        "answered_requests": answered,
        "requests_per_second": round(answered / load_seconds, 1),
        "paid_orders_per_second": round(len(seen.paid_orders) / load_seconds, 1),
        "statuses": {f"{what} {status} {code or ''}".strip(): n for (what, status, code), n in seen.statuses.items()},
    }


def cpu_by_kind(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds used between two snapshots, summed over the copies of each kind of process
    (a process killed in between counts for nothing after its last snapshot: read the
    single-instance run for per-process costs)."""
    used: Counter = Counter()
    for name, seconds in after.items():
        used[name.split("_")[0]] += max(0.0, seconds - before.get(name, 0.0))
    return dict(used)


def service_operations(stack: Stack) -> dict[str, int]:
    """Counters of the shared services: statements MariaDB ran, commands Redis processed."""
    info = redis.Redis(host="127.0.0.1", port=stack.redis_port).info("stats")
    questions = int(stack.sql("SHOW GLOBAL STATUS LIKE 'Questions'")[0][1])
    return {"sql statements": questions, "redis commands": int(info["total_commands_processed"])}


def fallback_applied(stack: Stack) -> int:
    """Events the beat's fallback applied, from the workers' task results in their logs."""
    found = 0
    for name in stack.named("worker"):
        text = (stack.log_dir / f"{name}.log").read_text(errors="replace")
        found += sum(int(n) for n in re.findall(r"outbox_fallback\[[^\]]+\] succeeded .*'applied': (\d+)", text))
    return found


def fallback_lines(stack: Stack) -> list[str]:
    """Which events the fallback applied (a line each in the workers' logs), for a failure's message."""
    found = []
    for name in stack.named("worker"):
        text = (stack.log_dir / f"{name}.log").read_text(errors="replace")
        found += re.findall(r"outbox fallback: applied event [^\n]*", text)
    return found


def record(name: str, figures: dict) -> None:
    REPORT[name] = figures
    print(f"\n{name}: {json.dumps(figures)}")


# --- kills during the cluster's load ---------------------------------------------------------------


def kill_active_relay(stack: Stack) -> dict:
    """kill -9 the relay holding the lock; the standby must hold it and deliver events again."""
    active = stack.active_relay()
    assert active, "no relay is active"
    standby = next(name for name in stack.named("relay") if name != active)
    killed_at, wall = time.monotonic(), datetime.now(UTC).replace(tzinfo=None)
    stack.kill9(active)
    stack.wait(lambda: stack.active_relay() == standby, timeout=30, what=f"{standby} to take over", interval=0.05)
    took_over = time.monotonic() - killed_at

    def first_event_after_kill_applied() -> bool:
        return bool(applied_event_ids(stack, since=wall))

    stack.wait(first_event_after_kill_applied, timeout=30, what="events to flow again through the standby")
    return {
        "relay_killed": active,
        "relay_standby_took_over_after_s": round(took_over, 2),
        "first_event_after_the_kill_applied_after_s": round(time.monotonic() - killed_at, 2),
    }


def assignment_lines(stack: Stack, name: str) -> list[str]:
    """The consumer's 'assigned ...' / 'revoked ...' log lines for the checkout topic, in order."""
    lines = (stack.log_dir / f"{name}.log").read_text(errors="replace").splitlines()
    return [line for line in lines if re.search(r"consumer checkout: (assigned|revoked)", line)]


def partitions(line: str) -> set[int]:
    found = re.search(r"\.queue\.checkout\[([\d,]+)\]", line)
    return {int(p) for p in found.group(1).split(",")} if found else set()


def held(lines: list[str]) -> set[int]:
    """The partitions held after these (incremental, cooperative-sticky) assignment changes."""
    now: set[int] = set()
    for line in lines:
        now = now | partitions(line) if "assigned" in line else now - partitions(line)
    return now


def kill_one_checkout_consumer(stack: Stack) -> dict:
    """kill -9 one of the two checkout consumers: the other must be assigned its partitions."""
    victim, survivor = stack.named("checkout")
    theirs = held(assignment_lines(stack, victim))
    assert theirs, f"{victim} holds no partition"
    before = len(assignment_lines(stack, survivor))
    killed_at = time.monotonic()
    stack.kill9(victim)
    stack.wait(
        lambda: theirs <= held(assignment_lines(stack, survivor)[before:]),
        timeout=30,
        what=f"{survivor} to be assigned {victim}'s partitions {sorted(theirs)}",
        interval=0.1,
    )
    return {
        "checkout_consumer_killed": victim,
        "its_partitions": sorted(theirs),
        "partitions_moved_after_s": round(time.monotonic() - killed_at, 2),
    }


# --- the scenarios ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if REPORT:
        path = Stack(**COPY).log_dir / "cluster-report.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(REPORT, indent=2))
        print(f"\ncluster report: {path}")


def test_single_instance_baseline_of_the_same_load():
    """One copy of each process (the web with 2 workers): the figures to compare with."""
    with running_stack(**COPY) as stack:
        tokens = stack.tokens(f"{SHOPPERS[0]}-{WARM_UP_USER}")
        record("single_instance", mixed_load(stack, tokens, seconds=LOAD_SECONDS))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Stack]:
    # Two web processes with one worker each: the same two workers as the single instance.
    with running_stack(copies=2, web_workers=1, **COPY) as stack:
        yield stack


def result_of(stream: Stream, request_id: str, timeout: float = 20) -> str:
    """The first `checkout-completed` / `checkout-failed` event of this request on the stream."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kind, _, data = stream.next_event()
        if kind in ("checkout-completed", "checkout-failed") and json.loads(data)["requestId"] == request_id:
            return kind
    raise TimeoutError(request_id)


def test_sse_reaches_the_shopper_on_either_sse_instance(cluster):
    """One shopper connected to both SSE servers; a queued checkout answered by whichever consumer
    reaches both streams (cross-process fan-out through Redis, events stored in the database)."""
    user = 40
    token = cluster.tokens(f"{user}-{user}")[user]
    api = Api(cluster.urls[1], token)
    streams = []
    for url in cluster.sse_urls:
        sse_token = api.call("POST", "/sse/token").data["token"]
        port = int(url.rsplit(":", 1)[1])
        stream = Stream(port, f"/api/sse/subscribe/{user}?token={sse_token}")
        assert stream.response.status == 200
        streams.append(stream)
    try:
        answer = Api(cluster.urls[0], token).call("POST", "/checkout/queue", {"productId": 2})
        assert answer.status == 202, answer.body
        request_id = answer.data["requestId"]
        got = Counter()
        for stream in streams:
            got[result_of(stream, request_id)] += 1
        assert len(got) == 1 and next(iter(got.values())) == 2, got
    finally:
        for stream in streams:
            stream.close()


def test_cluster_mixed_load_survives_the_active_relay_and_a_checkout_consumer_killed(cluster):
    assert sorted(cluster.processes) == sorted(
        [f"{kind}_{copy}" for kind in ("web", "sse", "worker", "checkout", "relay", "outbox") for copy in "ab"]
        + ["beat"]
    )
    standby = [name for name in cluster.named("relay") if name != cluster.active_relay()]
    assert len(standby) == 1
    cluster.wait(lambda: "standing by" in cluster.log(standby[0], tail=200), timeout=10, what="a standby relay")
    tokens = cluster.tokens(f"{SHOPPERS[0]}-{WARM_UP_USER}")
    figures = mixed_load(
        cluster,
        tokens,
        seconds=LOAD_SECONDS,
        events=((KILL_RELAY_AT, kill_active_relay), (KILL_CHECKOUT_AT, kill_one_checkout_consumer)),
    )
    record("cluster", figures)
    if "single_instance" in REPORT:
        single = REPORT["single_instance"]
        REPORT["cluster_vs_single"] = {
            key: round(figures[key] / single[key], 2) for key in ("requests_per_second", "paid_orders_per_second")
        }
        print(f"\ncluster / single: {REPORT['cluster_vs_single']}")
