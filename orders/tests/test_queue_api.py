"""`POST /checkout/queue`, `GET /checkout/queue/{id}`, `POST /sse/token`, `GET /api/sse/subscribe/{id}`.

Real broker (our own topic per test), real Redis and database; no consumer runs here.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.test import override_settings
from django_eventstream.models import Event
from django_redis import get_redis_connection

from common.kafka import reset_producer
from common.sse.storage import user_channel
from common.sse.views import sse_token_issue
from conftest import bearer, client_for
from orders.models import QueueRequest
from orders.queue.keys import queue_key
from orders.tests.helpers import make_product
from orders.tests.queue_support import enqueue_all, events_of, flash_product, topic_messages
from shop.tests.factories import UserFactory
from tests.support.ports import free_port, wait_for_port
from tests.support.processes import tansu_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("queue_topic")]

URL = "/api/v1/checkout/queue"


def test_enqueue_answers_202_with_position_records_the_claim_and_publishes_it(auth_api, user):
    product = flash_product(stock=5)
    second = client_for(UserFactory())

    first = auth_api.post(URL, {"productId": product.pk, "quantity": 2}, format="json")
    later = second.post(URL, {"productId": product.pk}, format="json")

    assert first.status_code == 202, first.json()
    data = first.json()["data"]
    assert set(data) == {"requestId", "queuePosition", "estimatedWaitSeconds"}
    assert (data["queuePosition"], data["estimatedWaitSeconds"]) == (1, 0)
    assert later.json()["data"]["queuePosition"] == 2
    row = QueueRequest.objects.get(request_id=data["requestId"])
    assert (row.user_id, row.product_id, row.quantity, row.status, row.live, row.queue_position) == (
        user.pk,
        product.pk,
        2,
        "QUEUED",
        True,
        1,
    )
    messages = topic_messages(expected=2)
    assert [m.key() for m in messages] == [f"product:{product.pk}".encode()] * 2
    assert json.loads(messages[0].value()) == {
        "type": "request",
        "requestId": data["requestId"],
        "productId": product.pk,
        "userId": user.pk,
        "quantity": 2,
        "queuePosition": 1,
    }
    assert events_of(user.pk) == [
        (
            "checkout-queued",
            {
                "requestId": data["requestId"],
                "productId": product.pk,
                "quantity": 2,
                "queuePosition": 1,
                "estimatedWaitSeconds": 0,
            },
        )
    ]


def test_one_live_request_per_user_and_product(auth_api, user):
    product, other = flash_product(stock=5), flash_product(stock=5)
    first = auth_api.post(URL, {"productId": product.pk}, format="json").json()["data"]

    again = auth_api.post(URL, {"productId": product.pk, "userId": user.pk}, format="json")

    assert again.status_code == 409
    assert again.json()["errorCode"] == "ALREADY_QUEUED"
    assert again.json()["data"] == {"requestId": first["requestId"], "queuePosition": 1}
    assert auth_api.post(URL, {"productId": other.pk}, format="json").status_code == 202
    # once the first is answered, the user may queue for the product again
    QueueRequest.objects.filter(request_id=first["requestId"]).update(status="FAILED", live=None, error_code="SOLD_OUT")
    assert auth_api.post(URL, {"productId": product.pk}, format="json").status_code == 202
    assert QueueRequest.objects.filter(user=user, product=product).count() == 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"productId": 0}, 400, "INVALID_INPUT"),
        ({"productId": "1"}, 400, "INVALID_INPUT"),
        ({"productId": 2**70}, 400, "INVALID_INPUT"),
        ({"productId": None}, 400, "INVALID_INPUT"),
        ({"quantity": 0}, 400, "INVALID_INPUT"),
        ({"quantity": 11}, 400, "INVALID_INPUT"),
        ({"quantity": 1.0}, 400, "INVALID_INPUT"),
        ({"quantity": True}, 400, "INVALID_INPUT"),
        ({"userId": "abc"}, 400, "INVALID_INPUT"),
        ({"productId": 999_999_999}, 404, "PRODUCT_NOT_FOUND"),
    ],
)
def test_bad_requests_are_refused_and_record_nothing(auth_api, body, status, code):
    product = flash_product(stock=5)
    response = auth_api.post(URL, {"productId": product.pk, **body}, format="json")
    assert (response.status_code, response.json()["errorCode"]) == (status, code)
    assert QueueRequest.objects.count() == 0


def test_queueing_refuses_other_products_other_users_no_token_and_malformed_bodies(api, auth_api, user):
    normal, flash = make_product(stock=5), flash_product(stock=5)
    inactive = flash_product(stock=5)
    inactive.status = "INACTIVE"
    inactive.save()

    assert auth_api.post(URL, {"productId": normal.pk}, format="json").json()["errorCode"] == "NOT_FLASH_SALE_PRODUCT"
    assert auth_api.post(URL, {"productId": inactive.pk}, format="json").json()["errorCode"] == "PRODUCT_NOT_FOUND"
    other = auth_api.post(URL, {"productId": flash.pk, "userId": user.pk + 1}, format="json")
    assert (other.status_code, other.json()["errorCode"]) == (403, "FORBIDDEN")
    assert api.post(URL, {"productId": flash.pk}, format="json").status_code == 401
    assert auth_api.post(URL, "[1]", content_type="application/json").status_code == 400
    assert QueueRequest.objects.count() == 0


def test_a_product_flagged_sold_out_is_refused_at_once_and_the_flag_expires(auth_api, user):
    product = flash_product(stock=0)
    redis = get_redis_connection("default")
    redis.set(queue_key("soldout", product.pk), 1, px=700)  # what the consumer sets when stock reaches 0

    refused = auth_api.post(URL, {"productId": product.pk}, format="json")

    assert (refused.status_code, refused.json()["errorCode"]) == (409, "SOLD_OUT")
    assert QueueRequest.objects.count() == 0 and events_of(user.pk) == []
    assert redis.get(queue_key("pos", product.pk)) is None  # no position was taken
    time.sleep(0.8)  # the flag never refuses for long: after it expires the consumer re-checks the stock
    assert auth_api.post(URL, {"productId": product.pk}, format="json").status_code == 202


def test_broker_stopped_answers_503_and_records_nothing(auth_api, user, children):
    """A throw-away broker of our own, stopped for real (the shared one is never touched)."""
    product = flash_product(stock=5)
    port = free_port()
    broker = children.start("tansu", tansu_command(port))
    try:
        wait_for_port(port)
        with override_settings(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}"):
            reset_producer()
            accepted = auth_api.post(URL, {"productId": product.pk}, format="json")
            assert accepted.status_code == 202, accepted.json()
            QueueRequest.objects.update(status="FAILED", live=None, error_code="SOLD_OUT")  # answered
            events_before = Event.objects.count()
            broker.kill()

            started = time.monotonic()
            refused = auth_api.post(URL, {"productId": product.pk}, format="json")

            assert time.monotonic() - started < 2.5  # the wait for the ack is bounded
            assert refused.status_code == 503
            assert refused.json()["errorCode"] == "QUEUE_UNAVAILABLE"
            assert refused["Retry-After"] == "2"
            assert QueueRequest.objects.count() == 1  # only the first, answered one
            assert not QueueRequest.objects.filter(status="QUEUED").exists()
            assert Event.objects.count() == events_before  # no checkout-queued was pushed
    finally:
        broker.stop()
        reset_producer()
    # the broker is back (the shared one): the same user may queue at once, nothing was left behind
    assert auth_api.post(URL, {"productId": product.pk}, format="json").status_code == 202


def test_status_is_readable_by_its_owner_only(auth_api, user, django_assert_num_queries):
    product = flash_product(stock=5)
    request_id = auth_api.post(URL, {"productId": product.pk}, format="json").json()["data"]["requestId"]

    with django_assert_num_queries(1):  # the request joined with its order (the user comes from the token)
        mine = auth_api.get(f"{URL}/{request_id}")

    assert mine.status_code == 200
    assert mine.json()["data"] | {"createdAt": None} == {
        "requestId": request_id,
        "status": "QUEUED",
        "productId": product.pk,
        "quantity": 1,
        "queuePosition": 1,
        "orderId": None,
        "orderNumber": None,
        "finalAmount": None,
        "errorCode": None,
        "createdAt": None,
        "completedAt": None,
    }
    stranger = client_for(UserFactory()).get(f"{URL}/{request_id}")
    assert (stranger.status_code, stranger.json()["errorCode"]) == (404, "QUEUE_REQUEST_NOT_FOUND")
    assert auth_api.get(f"{URL}/{uuid.uuid4()}").status_code == 404
    assert auth_api.get(f"{URL}/not-a-uuid").status_code == 404


def test_idempotency_key_replays_the_first_answer(auth_api):
    product = flash_product(stock=5)
    first = auth_api.post(URL, {"productId": product.pk}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = auth_api.post(URL, {"productId": product.pk}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert QueueRequest.objects.count() == 1


# --- SSE authentication (the stream itself runs under ASGI: see test_queue_e2e.py) --------------------


def test_sse_token_opens_only_the_callers_own_stream(auth_api, api, user, other_user):
    issued = auth_api.post("/api/v1/sse/token").json()["data"]
    assert issued["expiresIn"] == 300
    assert issued["subscribeUrl"] == f"http://127.0.0.1:8000/api/sse/subscribe/{user.pk}?token={issued['token']}"
    mine = f"/api/sse/subscribe/{user.pk}"
    origin = {"HTTP_ORIGIN": "http://127.0.0.1:8000"}

    # authenticated but under WSGI: refused with a pointer to the SSE process (the stream would never flush)
    ok = api.get(mine, {"token": issued["token"]}, **origin)
    assert (ok.status_code, ok.json()["errorCode"]) == (421, "SSE_WRONG_SERVER")
    assert ok["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"
    assert api.get(mine, HTTP_AUTHORIZATION=bearer(user)).status_code == 421

    assert api.get(mine).status_code == 401
    assert api.get(mine, {"token": "nonsense"}).status_code == 401
    assert api.get(mine, {"token": issued["token"] + "x"}).status_code == 401
    assert api.get(mine, HTTP_AUTHORIZATION="Bearer nonsense").status_code == 401
    other = api.get(f"/api/sse/subscribe/{other_user.pk}", {"token": issued["token"]}, **origin)
    assert (other.status_code, other.json()["errorCode"]) == (403, "FORBIDDEN")
    assert api.get(f"/api/sse/subscribe/{other_user.pk}", HTTP_AUTHORIZATION=bearer(user)).status_code == 403
    assert "Access-Control-Allow-Origin" not in api.get(mine, HTTP_ORIGIN="http://evil.example")
    assert api.post(mine, {"token": issued["token"]}).status_code == 405


def test_sse_token_expires(api, user):
    token = sse_token_issue(user_id=user.pk)
    with override_settings(SSE_TOKEN_MAX_AGE=0):
        time.sleep(1.1)
        assert api.get(f"/api/sse/subscribe/{user.pk}", {"token": token}).status_code == 401


def test_sse_token_needs_authentication(api):
    assert api.post("/api/v1/sse/token").status_code == 401
    assert Event.objects.filter(channel=user_channel(1)).count() == 0


def test_concurrent_requests_of_one_user_leave_exactly_one_live_request(user):
    """The database's unique (user, product, live) key decides, not a read-then-write check."""
    product = flash_product(stock=5)

    results = enqueue_all([user] * 12, product, threads=12)

    queued = [r for r in results if r != "ALREADY_QUEUED"]
    assert len(queued) == 1 and results.count("ALREADY_QUEUED") == 11
    assert list(QueueRequest.objects.values_list("request_id", flat=True)) == [uuid.UUID(queued[0])]
    assert len(topic_messages(expected=2, timeout=3)) == 1  # and only one message was published


def test_redis_down_answers_503_and_records_nothing(auth_api, throwaway_redis):
    """The queue needs Redis (positions, sold-out flags): a real Redis of our own, stopped."""
    product = flash_product(stock=5)
    assert auth_api.post(URL, {"productId": product.pk}, format="json").status_code == 202
    QueueRequest.objects.update(status="FAILED", live=None, error_code="SOLD_OUT")
    throwaway_redis.stop()

    refused = auth_api.post(URL, {"productId": product.pk}, format="json")

    assert refused.status_code == 503, refused.json()
    assert refused.json()["errorCode"] == "CACHE_UNAVAILABLE" and refused["Retry-After"]
    assert not QueueRequest.objects.filter(status="QUEUED").exists()
