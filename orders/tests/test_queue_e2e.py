"""The queued checkout end to end with real processes: `manage.py run_consumer checkout` and the ASGI
SSE server (uvicorn) as children, the real broker, database and Redis. Marked slow."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django_eventstream.models import Event

from common.sse.storage import user_channel
from common.sse.views import sse_token_issue
from inventory.models import Reservation
from orders.models import Order, QueueRequest
from orders.queue.admission import queue_request_enqueue
from orders.tests.helpers import stock_of
from orders.tests.queue_support import answered, bulk_users, enqueue_all, flash_product
from tests.support.processes import child_env, start_sse_server
from tests.support.sse import Stream, wait_for_live_delivery
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.usefixtures("queue_topic")]


def assert_each_request_answered_once(users) -> None:
    """Exactly one stored result event per request, matching its row (counted in the SSE storage)."""
    counts = Counter(
        (e["channel"], e["type"])
        for e in Event.objects.filter(channel__in=[user_channel(u.pk) for u in users], eid__gt=0).values(
            "channel", "type"
        )
    )
    expected = Counter()
    for row in QueueRequest.objects.filter(user__in=users).values("user_id", "status"):
        channel = user_channel(row["user_id"])
        expected[(channel, "checkout-queued")] += 1
        expected[(channel, "checkout-completed" if row["status"] == "COMPLETED" else "checkout-failed")] += 1
    assert counts == expected


def test_1000_requests_for_100_units_make_exactly_100_orders_and_answer_everyone(checkout_consumer):
    product = flash_product(stock=100)
    users = bulk_users(1000)

    # all queued before the consumer answers: once the stock is gone the sold-out flag would refuse the
    # rest at admission (409 SOLD_OUT without queueing), which is the point of the flag
    ids = enqueue_all(users, product)
    child = checkout_consumer()
    wait_until(lambda: answered() == 1000, timeout=60, what="all answers", details=child.tail)

    assert len(set(ids)) == 1000
    assert QueueRequest.objects.filter(status="COMPLETED").count() == 100
    assert QueueRequest.objects.filter(status="FAILED", error_code="SOLD_OUT").count() == 900
    assert Order.objects.filter(items__product=product).distinct().count() == 100 == Order.objects.count()
    assert Reservation.objects.filter(product=product, status="ACTIVE").count() == 100
    assert stock_of(product) == (100, 100)
    assert_each_request_answered_once(users)


def test_a_consumer_killed_mid_stream_and_restarted_still_makes_exactly_100_orders(checkout_consumer):
    product = flash_product(stock=100)
    users = bulk_users(1000)
    first = checkout_consumer()
    enqueue_all(users[:40], product)
    wait_until(lambda: answered() == 40, timeout=30, what="the first wave", details=first.tail)

    with ThreadPoolExecutor(max_workers=1) as background:
        rest = background.submit(enqueue_all, users[40:], product, threads=2)  # arrives while it answers
        wait_until(lambda: answered() >= 50, timeout=30, what="the consumer to be mid-stream", interval=0.005)
        first.kill()  # SIGKILL: no clean shutdown, no offset commit, no leaving the group
        at_kill = answered()
        outcomes = rest.result(60)
    second = checkout_consumer()  # the same group: it resumes from the last committed offsets, replaying the rest
    queued = QueueRequest.objects.count()
    wait_until(lambda: answered() == queued, timeout=60, what="all answers after the restart", details=second.tail)

    # Requests that arrived after the stock ran out (before the kill) were refused at admission by the
    # sold-out flag: answered at once, never queued. Every other one was queued and answered exactly once.
    refused = outcomes.count("SOLD_OUT")
    later = QueueRequest.objects.filter(user__in=users[40:]).values_list("request_id", flat=True)
    assert {o for o in outcomes if o != "SOLD_OUT"} == {str(request_id) for request_id in later}
    assert queued + refused == 1000
    assert at_kill < queued  # the restarted consumer had work left
    assert QueueRequest.objects.filter(status="COMPLETED").count() == 100 == Order.objects.count()
    assert QueueRequest.objects.filter(status="FAILED", error_code="SOLD_OUT").count() == queued - 100
    assert stock_of(product) == (100, 100)
    assert Reservation.objects.filter(product=product).count() == 100
    assert_each_request_answered_once(users)


# --- SSE over ASGI ----------------------------------------------------------------------------------


def test_sse_over_asgi_delivers_events_from_other_processes_and_replays_after_reconnect(checkout_consumer, children):
    product, second = flash_product(stock=10), flash_product(stock=10)
    user, stranger, warm = bulk_users(3)
    checkout_consumer()
    port = start_sse_server(children, child_env(SSE_ALLOWED_ORIGINS="http://shop.example"))
    wait_for_live_delivery(port, warm.pk, sse_token_issue(user_id=warm.pk))
    token = sse_token_issue(user_id=user.pk)
    path = f"/api/sse/subscribe/{user.pk}?token={token}"

    refused = Stream(port, f"/api/sse/subscribe/{stranger.pk}?token={token}")
    assert refused.response.status == 403
    refused.close()
    assert Stream(port, f"/api/sse/subscribe/{user.pk}?token=forged").response.status == 401

    stream = Stream(port, path, {"Origin": "http://shop.example"})
    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    assert stream.response.getheader("Access-Control-Allow-Origin") == "http://shop.example"
    stream.until("stream-open")

    # checkout-queued comes from this (web) process, checkout-completed from the consumer process
    first = str(queue_request_enqueue(user_id=user.pk, product_id=product.pk).request.request_id)
    _, queued = stream.until("checkout-queued", first)
    last_id, done = stream.until("checkout-completed", first)
    assert queued["queuePosition"] == 1 and done["status"] == "COMPLETED" and done["orderNumber"]
    assert last_id.startswith(f"{user_channel(user.pk)}:")
    stream.close()

    # missed while disconnected ...
    missed = str(queue_request_enqueue(user_id=user.pk, product_id=second.pk).request.request_id)
    wait_until(lambda: answered() == 2, timeout=20, what="the second answer")

    # ... and replayed on reconnect with Last-Event-ID, in order
    again = Stream(port, path, {"Last-Event-ID": last_id})
    assert again.response.status == 200
    _, replayed_queued = again.until("checkout-queued", missed)
    _, replayed_done = again.until("checkout-completed", missed)
    assert replayed_queued["productId"] == replayed_done["productId"] == second.pk
    again.close()


def test_open_streams_hold_no_database_connection(children):
    """Each stream's reads run in a thread of its own under ASGI: without
    `common.sse.storage.StreamStorage` every open stream kept a MariaDB connection (200 streams ->
    200 connections, measured)."""
    users = bulk_users(25)
    port = start_sse_server(children, child_env())

    def connections() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s", [connection.settings_dict["NAME"]]
            )
            return cursor.fetchone()[0]

    streams = []
    try:
        warm = Stream(port, f"/api/sse/subscribe/{users[0].pk}?token={sse_token_issue(user_id=users[0].pk)}")
        warm.until("stream-open")
        before = connections()
        for user in users[1:]:
            stream = Stream(port, f"/api/sse/subscribe/{user.pk}?token={sse_token_issue(user_id=user.pk)}")
            stream.until("stream-open")
            streams.append(stream)
        held = connections() - before
        assert held <= 2, f"{len(streams)} open streams hold {held} database connections"
        warm.close()
    finally:
        for stream in streams:
            stream.close()
