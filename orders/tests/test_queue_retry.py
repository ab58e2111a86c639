"""`POST /checkout/queue` retried with its Idempotency-Key after the first attempt's web worker died.

The dead worker is reproduced exactly: the first attempt runs for real (its row is committed, its
message produced or not), then its claim is put back the way a killed worker leaves it, IN_FLIGHT
and never completed, and aged past IDEMPOTENCY_STALE_SECONDS so the retry takes it over and runs
the view again. Real broker (a topic of our own), Redis and database; the consumer runs in-process.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from common.models import IdempotencyKey
from inventory.models import Stock
from orders.models import Order, QueueRequest
from orders.queue.keys import QUEUE_TOPIC
from orders.tests.helpers import fund
from orders.tests.queue_support import answered, drain, flash_product, topic_messages

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("queue_topic")]

URL = "/api/v1/checkout/queue"
KEY = "retry-after-crash-1"


def worker_died_before_answering(key: str) -> None:
    """The claim as a killed worker leaves it (never completed), old enough to be taken over."""
    stale = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS + 1)
    updated = IdempotencyKey.objects.filter(key=key).update(
        status=IdempotencyKey.Status.IN_FLIGHT, response_status=None, response_body=None, updated_at=stale
    )
    assert updated == 1


def queue(auth_api, product, key: str = KEY):
    return auth_api.post(URL, {"productId": product.pk}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_retry_after_the_request_was_answered_names_it_and_queues_nothing_more(auth_api, user):
    product = flash_product(stock=5)
    fund(user, 1_000_000)
    first = queue(auth_api, product)
    assert first.status_code == 202, first.json()
    drain(lambda: answered() == 1)  # the consumer answered it: the user has no live request any more
    worker_died_before_answering(KEY)

    retried = queue(auth_api, product)

    assert retried.status_code == 202, retried.json()
    assert "Idempotent-Replayed" not in retried  # the view ran again: the stale claim was taken over
    assert retried.json()["data"]["requestId"] == first.json()["data"]["requestId"]
    assert retried.json()["data"]["queuePosition"] == first.json()["data"]["queuePosition"]
    assert QueueRequest.objects.filter(user=user).count() == 1
    assert Order.objects.filter(user=user).count() == 1
    assert len(topic_messages(expected=2, timeout=3)) == 1  # nothing was published again
    assert IdempotencyKey.objects.get(key=KEY).status == IdempotencyKey.Status.DONE
    assert queue(auth_api, product)["Idempotent-Replayed"] == "true"  # from now on the stored answer


def test_a_retry_after_the_request_was_stored_but_never_published_publishes_it_once(auth_api, user, private_kafka):
    product = flash_product(stock=5)
    fund(user, 1_000_000)
    private_kafka(QUEUE_TOPIC)  # the first attempt's message goes where no consumer reads: never produced
    first = queue(auth_api, product)
    private_kafka(QUEUE_TOPIC)  # the topic the retry publishes to and the consumer reads
    assert first.status_code == 202, first.json()
    worker_died_before_answering(KEY)
    request_id = first.json()["data"]["requestId"]
    assert QueueRequest.objects.get(request_id=request_id).status == "QUEUED"

    retried = queue(auth_api, product)

    assert retried.status_code == 202, retried.json()
    assert retried.json()["data"]["requestId"] == request_id
    assert QueueRequest.objects.filter(user=user).count() == 1
    (message,) = topic_messages(expected=2, timeout=3)
    assert request_id in message.value().decode()
    drain(lambda: answered() == 1, min_batches=1)
    row = QueueRequest.objects.get(request_id=request_id)
    assert row.status == "COMPLETED" and row.order_id is not None
    assert Order.objects.filter(user=user).count() == 1
    assert Stock.objects.get(pk=product.pk).reserved_quantity == 1


def test_a_retry_while_the_request_is_still_queued_publishes_it_again_and_it_is_answered_once(auth_api, user):
    """The first message did land: the consumer gets two messages naming one request."""
    product = flash_product(stock=5)
    fund(user, 1_000_000)
    first = queue(auth_api, product)
    worker_died_before_answering(KEY)

    retried = queue(auth_api, product)

    assert retried.json()["data"]["requestId"] == first.json()["data"]["requestId"]
    assert len(topic_messages(expected=3, timeout=3)) == 2
    drain(lambda: answered() == 1, min_batches=1)
    assert QueueRequest.objects.filter(user=user).count() == 1
    assert Order.objects.filter(user=user).count() == 1
    assert Stock.objects.get(pk=product.pk).reserved_quantity == 1


def test_a_key_names_one_request_only(auth_api, user):
    """The same key for another product (its stored answer gone) is refused and queues nothing."""
    product, other = flash_product(stock=5), flash_product(stock=5)
    assert queue(auth_api, product).status_code == 202
    IdempotencyKey.objects.filter(key=KEY).delete()  # purged after IDEMPOTENCY_TTL_HOURS

    refused = queue(auth_api, other)

    assert (refused.status_code, refused.json()["errorCode"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert QueueRequest.objects.filter(user=user).count() == 1
    assert not IdempotencyKey.objects.filter(key=KEY).exists()


def test_keys_differing_only_in_case_are_two_requests(auth_api, user):
    """The request row's key column compares byte for byte, like the claim's: `K1` does not find `k1`."""
    first_product, second_product = flash_product(stock=5), flash_product(stock=5)
    first = queue(auth_api, first_product, key="k1")
    second = queue(auth_api, second_product, key="K1")
    assert first.status_code == second.status_code == 202, second.json()
    assert "Idempotent-Replayed" not in second
    assert first.json()["data"]["requestId"] != second.json()["data"]["requestId"]
    assert sorted(QueueRequest.objects.filter(user=user).values_list("idempotency_key", "product_id")) == sorted(
        [("k1", first_product.pk), ("K1", second_product.pk)]
    )
