"""After a load with failures: did every effect happen exactly once? Compares what the shoppers were
told (`Seen`) with the rows of a private copy (`Stack`), for the rows created since `high_water`.

Used by the kill -9 fault test and the cluster test: orders, payments, ledger debits, user coupons and
queue requests must be exactly the ones clients heard of; every outbox event must be in the inbox once;
its effects (sales statistics, SSE events) must have been applied once; every queue request must have
been answered with exactly one stored result event.
"""

from __future__ import annotations

import time
from collections import Counter

from tests.faults.shoppers import Seen
from tests.faults.stack import Stack
from tests.support.sse import stored_payload
from tests.support.waiting import poll

TABLES = ("orders_order", "payments_payment", "shop_usercoupon", "orders_queuerequest", "shop_pointhistory")


def high_water(stack: Stack) -> dict[str, int]:
    """The last id of each table before the load: what comes after is the load's."""
    return {table: stack.value(f"SELECT COALESCE(MAX(id), 0) FROM {table}") for table in TABLES}


def wait_confirmed(stack: Stack, order_ids: list[int], timeout: float) -> float:
    """Wait until the PaymentCompleted events of these orders were applied (PAID -> CONFIRMED)."""
    started = time.monotonic()
    marks = ",".join(["%s"] * len(order_ids))

    def confirmed() -> bool:
        statuses = stack.sql(f"SELECT status FROM orders_order WHERE id IN ({marks})", tuple(order_ids))
        return len(statuses) == len(order_ids) and all(s == "CONFIRMED" for (s,) in statuses)

    shown = f"{order_ids[:10]}{' and more' if len(order_ids) > 10 else ''}"
    stack.wait(confirmed, timeout=timeout, what=f"{len(order_ids)} orders {shown} to be CONFIRMED")
    return time.monotonic() - started


def settle(stack: Stack, seen: Seen, users: tuple[int, ...], *, timeout: float = 60) -> float:
    """Wait until every queue request of these users is answered and every paid order is CONFIRMED
    (its PaymentCompleted event applied); returns the seconds it took."""
    started = time.monotonic()
    marks = ",".join(["%s"] * len(users))
    stack.wait(
        lambda: stack.value(
            f"SELECT COUNT(*) FROM orders_queuerequest WHERE status = 'QUEUED' AND user_id IN ({marks})", users
        )
        == 0,
        timeout=timeout,
        what="every queued request to be answered",
    )
    if seen.paid_orders:
        wait_confirmed(stack, sorted(seen.paid_orders), timeout=timeout)
    return time.monotonic() - started


def unapplied_events(stack: Stack, *, wait: float) -> list[tuple]:
    """Outbox events the inbox has not recorded, after waiting up to `wait` s for them."""

    def missing() -> list[tuple]:
        events = stack.sql("SELECT CAST(id AS CHAR), type, aggregateid, created_at FROM outbox_event")
        inbox = set(applied_event_ids(stack))
        return [event for event in events if event[0] not in inbox]

    return poll(missing, until=lambda found: not found, timeout=wait)


def queue_requests_unknown_to_clients(stack: Stack, unknown: set[str], seen: Seen, context: str = "") -> str:
    """Stored queue requests no client was told of, with the story of their users' calls."""
    if not unknown:
        return ""
    marks = ",".join(["%s"] * len(unknown))
    details = stack.sql(
        "SELECT CAST(request_id AS CHAR), user_id, status, order_id, error_code, created_at, completed_at "
        f"FROM orders_queuerequest WHERE CAST(request_id AS CHAR) IN ({marks})",
        tuple(unknown),
    )
    users = {row[1] for row in details}
    calls = [entry for entry in seen.queue_log if entry[0] in users]
    return f"queue requests no client was told of: {details}\nthose users' queue calls: {calls}\n{context}"


def applied_event_ids(stack: Stack, since=None) -> list[str]:
    """Ids of the outbox events the consumer (or the fallback) applied, optionally of events newer
    than `since` (compared in Python: the two id columns have different collations)."""
    applied = [row[0] for row in stack.sql("SELECT event_id FROM outbox_processed_event WHERE consumer = 'outbox'")]
    if since is None:
        return applied
    newer = {row[0] for row in stack.sql("SELECT CAST(id AS CHAR) FROM outbox_event WHERE created_at > %s", (since,))}
    return [event_id for event_id in applied if event_id in newer]


def rows_since(stack: Stack, query: str, since: int, users: tuple[int, ...]) -> set:
    marks = ",".join(["%s"] * len(users))
    return {row[0] for row in stack.sql(query.format(marks=marks), (since, *users))}


def assert_exactly_once(
    stack: Stack, seen: Seen, users: tuple[int, ...], last: dict[str, int], *, context: str = ""
) -> dict[str, int]:
    """Every row the load created is one a client was told of, once; returns the counts."""
    queue_orders = rows_since(
        stack,
        "SELECT order_id FROM orders_queuerequest WHERE id > %s AND user_id IN ({marks}) AND order_id IS NOT NULL",
        last["orders_queuerequest"],
        users,
    )
    orders = rows_since(
        stack, "SELECT id FROM orders_order WHERE id > %s AND user_id IN ({marks})", last["orders_order"], users
    )
    payments = rows_since(
        stack, "SELECT id FROM payments_payment WHERE id > %s AND user_id IN ({marks})", last["payments_payment"], users
    )
    coupons = rows_since(
        stack, "SELECT id FROM shop_usercoupon WHERE id > %s AND user_id IN ({marks})", last["shop_usercoupon"], users
    )
    requests_ = rows_since(
        stack,
        "SELECT CAST(request_id AS CHAR) FROM orders_queuerequest WHERE id > %s AND user_id IN ({marks})",
        last["orders_queuerequest"],
        users,
    )
    marks = ",".join(["%s"] * len(users))
    debits = stack.sql(
        "SELECT order_id, COUNT(*) FROM shop_pointhistory WHERE id > %s AND type = 'USE' "
        f"AND user_id IN ({marks}) GROUP BY order_id",
        (last["shop_pointhistory"], *users),
    )

    assert seen.server_errors() == {}, seen.server_errors()
    assert seen.orders and seen.payments, seen.statuses
    assert orders - queue_orders == seen.orders  # every order a client was told of, and no other
    assert payments == seen.payments
    assert {order for order, _ in debits} == seen.paid_orders
    assert all(count == 1 for _, count in debits), debits  # one debit per paid order
    assert coupons == seen.user_coupons
    assert seen.queue_requests <= requests_, "a client was told of a queue request that is not stored"
    # A second request for one retried call (the client heard of one of them) would show here.
    assert requests_ == seen.queue_requests, queue_requests_unknown_to_clients(
        stack, requests_ - seen.queue_requests, seen, context
    )
    return {
        "orders": len(seen.orders),
        "queued_orders": len(queue_orders),
        "payments": len(seen.payments),
        "coupons": len(seen.user_coupons),
        "queue_requests": len(requests_),
    }


def stored_notifications(stack: Stack, users: tuple[int, ...]) -> tuple[Counter, Counter]:
    """Stored SSE events of these users: order-completed per order id, queue results per request id."""
    marks = ",".join(["%s"] * len(users))
    channels = tuple(f"user-{user}" for user in users)
    events = stack.sql(
        f"SELECT type, data FROM django_eventstream_event WHERE eid > 0 AND channel IN ({marks})", channels
    )
    per_order = Counter(stored_payload(data)["orderId"] for kind, data in events if kind == "order-completed")
    results = Counter(
        stored_payload(data)["requestId"] for kind, data in events if kind in ("checkout-completed", "checkout-failed")
    )
    return per_order, results


def assert_event_effects_once(stack: Stack, users: tuple[int, ...], last: dict[str, int]) -> None:
    """The effects of events (not only their inbox rows) happened once: the daily sales statistics
    equal the lines of the confirmed orders, each confirmed order has one `order-completed` SSE event
    and each queue request one stored result event (both stored in the consumer's transaction, so
    exactly one even across kills)."""
    sales = dict(stack.sql("SELECT product_id, CAST(SUM(quantity) AS SIGNED) FROM shop_salesdaily GROUP BY product_id"))
    confirmed = dict(
        stack.sql(
            "SELECT i.product_id, CAST(SUM(i.quantity) AS SIGNED) FROM orders_orderitem i "
            "JOIN orders_order o ON o.id = i.order_id WHERE o.status = 'CONFIRMED' GROUP BY i.product_id"
        )
    )
    assert {p: q for p, q in sales.items() if q} == confirmed, "sales statistics differ from confirmed order lines"

    confirmed_orders = rows_since(
        stack,
        "SELECT id FROM orders_order WHERE id > %s AND user_id IN ({marks}) AND status = 'CONFIRMED'",
        last["orders_order"],
        users,
    )

    per_order, results = stored_notifications(stack, users)
    unnoticed = confirmed_orders - set(per_order)
    assert all(n == 1 for n in per_order.values()), per_order.most_common(3)
    assert not unnoticed, f"confirmed orders without their order-completed event: {sorted(unnoticed)}"
    requests_ = rows_since(
        stack,
        "SELECT CAST(request_id AS CHAR) FROM orders_queuerequest WHERE id > %s AND user_id IN ({marks})",
        last["orders_queuerequest"],
        users,
    )
    assert set(results) == requests_, "a queue request without its result event, or an unknown one"
    assert all(n == 1 for n in results.values()), results.most_common(3)
