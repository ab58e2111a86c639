"""The real handlers over the real domain services: what each event does, once."""

import json

import pytest
from django.utils import timezone
from django_eventstream.models import Event as SseEvent

from orders.models import Order
from orders.services import LineRequest, checkout_initiate, order_cancel, order_expire
from orders.tests.helpers import fund, make_product
from outbox.apply import event_apply, events_apply
from outbox.events import event_from_row
from outbox.models import OutboxEvent, ProcessedEvent
from payments.models import Payment
from payments.services import payment_process
from shop.models import CartItem, SalesDaily
from shop.services.cart import cart_item_set
from shop.tests.factories import UserFactory
from tests.support.kafka import read_topic
from tests.support.sse import stored_payload

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def feed_topic(private_kafka) -> str:
    return f"{private_kafka('data-platform')}.data-platform"


def apply_outbox(event_type: str, *, times: int = 1) -> None:
    row = OutboxEvent.objects.filter(type=event_type).latest("created_at")
    for _ in range(times):
        event_apply(event_from_row(row), source="test")


def sse(user, event_type: str) -> list[dict]:
    rows = SseEvent.objects.filter(channel=f"user-{user.pk}", type=event_type).order_by("id")
    return [stored_payload(row.data) for row in rows]


def sold(product) -> int:
    return sum(SalesDaily.objects.filter(product=product).values_list("quantity", flat=True))


def paid_order(user, product, other_product, quantity=2) -> Order:
    fund(user, 1_000_000)
    cart_item_set(user_id=user.pk, product_id=product.pk, quantity=quantity)
    cart_item_set(user_id=user.pk, product_id=other_product.pk, quantity=1)  # not checked out
    order = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, quantity)])
    payment_process(user_id=user.pk, order_id=order.pk, amount=order.final_amount)
    return order


def test_payment_completed_confirms_counts_sales_cleans_the_cart_notifies_and_feeds_once(user, feed_topic):
    product, other = make_product(stock=10, price=5_000), make_product(stock=10)
    order = paid_order(user, product, other)

    apply_outbox("PaymentCompleted", times=3)  # redelivered: one effect

    order.refresh_from_db()
    assert order.status == "CONFIRMED"
    assert SalesDaily.objects.get(product=product).quantity == 2
    assert SalesDaily.objects.get(product=product).day == timezone.localdate()
    assert list(CartItem.objects.filter(cart__user=user).values_list("product_id", flat=True)) == [other.pk]
    payment_id = Payment.objects.get(order=order).pk
    assert sse(user, "order-completed") == [
        {"orderId": order.pk, "paymentId": payment_id, "amount": 10_000, "status": "CONFIRMED"}
    ]

    feed = read_topic(feed_topic, expect=1)
    assert len(feed) == 1
    body = json.loads(feed[0].value())
    assert feed[0].key() == str(order.pk).encode()
    assert (body["eventType"], body["orderId"], body["userId"], body["amount"]) == (
        "OrderPaid",
        order.pk,
        user.pk,
        10_000,
    )
    assert body["items"] == [{"productId": product.pk, "quantity": 2}]
    event_id = str(OutboxEvent.objects.get(type="PaymentCompleted").id)
    assert dict(feed[0].headers())["eventId"] == event_id.encode() == body["eventId"].encode()
    assert set(ProcessedEvent.objects.values_list("consumer", "event_id")) == {
        ("outbox", event_id),
        ("outbox.data-platform", event_id),
    }


def test_cancelling_a_paid_order_takes_its_sales_back_whatever_the_order_of_events(user, feed_topic):
    product, other = make_product(stock=10), make_product(stock=10)
    order = paid_order(user, product, other, quantity=3)
    order_cancel(order_id=order.pk, user_id=user.pk, reason="changed my mind")

    apply_outbox("OrderCancelled", times=2)  # before the payment's event, and twice
    assert sold(product) == -3
    apply_outbox("PaymentCompleted")

    assert sold(product) == 0
    assert Order.objects.get(pk=order.pk).status == "CANCELLED"  # not confirmed after the cancel
    assert sse(user, "order-completed") == []
    assert sse(user, "order-cancelled") == [{"orderId": order.pk, "reason": "changed my mind", "wasPaid": True}]


def test_an_expired_order_notifies_the_user_and_touches_no_statistics(user):
    product = make_product(stock=10)
    fund(user, 100_000)
    order = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1)])
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now())
    assert order_expire(order_id=order.pk)

    apply_outbox("OrderExpired", times=2)

    assert sse(user, "order-expired") == [{"orderId": order.pk, "reason": "EXPIRED", "wasPaid": False}]
    assert not SalesDaily.objects.filter(product=product).exists()


def test_a_chunk_of_order_events_has_the_effects_of_its_events_one_by_one(user, feed_topic):
    """The consumer's fast path: every event of a chunk in one `events_apply`, each handler
    receiving its type's events at once (a duplicate in the chunk, a paid order cancelled, an
    expired one, two users); applied again, nothing changes."""
    other_user = UserFactory()
    product, other = make_product(stock=20, price=1_000), make_product(stock=20, price=2_000)
    first = paid_order(user, product, other, quantity=2)  # leaves `other` in the cart
    second = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(other.pk, 1)])
    payment_process(user_id=user.pk, order_id=second.pk, amount=second.final_amount)
    cancelled = paid_order(other_user, product, other, quantity=1)
    order_cancel(order_id=cancelled.pk, user_id=other_user.pk, reason="no")
    expired = checkout_initiate(user_id=other_user.pk, direct_items=[LineRequest(other.pk, 1)])
    Order.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    assert order_expire(order_id=expired.pk)
    events = [event_from_row(row) for row in OutboxEvent.objects.order_by("created_at")]
    assert [e.type for e in events].count("PaymentCompleted") == 3 and len(events) == 5

    assert events_apply([*events, events[0]], source="test") == [True] * 5 + [False]
    assert events_apply(events, source="test") == [False] * 5

    statuses = dict(Order.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "CONFIRMED", second.pk: "CONFIRMED", cancelled.pk: "CANCELLED", expired.pk: "EXPIRED"}
    assert (sold(product), sold(other)) == (2, 1)  # the cancelled order's sale taken back
    assert not CartItem.objects.filter(cart__user=user).exists()
    assert list(CartItem.objects.filter(cart__user=other_user).values_list("product_id", flat=True)) == [other.pk]
    assert [d["orderId"] for d in sse(user, "order-completed")] == [first.pk, second.pk]
    assert sse(other_user, "order-completed") == []
    assert [d["orderId"] for d in sse(other_user, "order-cancelled")] == [cancelled.pk]
    assert [d["orderId"] for d in sse(other_user, "order-expired")] == [expired.pk]
    ids = list(SseEvent.objects.filter(channel=f"user-{user.pk}").order_by("eid").values_list("eid", flat=True))
    assert ids == [0, 1, 2]  # the placeholder, then one id per event
    assert len(read_topic(feed_topic, expect=3)) == 3  # one data-platform message per payment
