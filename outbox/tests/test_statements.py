"""How many SQL statements the outbox consumer's write path sends: PaymentCompleted applied through
the real apply path (`events_apply`: inbox, handler, SSE storage, the data-platform record).
Pinned, so that a change that adds a round trip per event fails here; if a new statement is worth
it, update the figure and say why in the commit. A chunk costs what one event costs: the handlers
write a whole chunk with one statement per table."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.sse import storage
from common.sse.push import sse_push
from conftest import executed_sql
from orders.models import Order
from orders.services import LineRequest, checkout_initiate
from orders.tests.helpers import fund, make_product
from outbox.apply import events_apply
from outbox.events import Event, event_from_row
from outbox.models import OutboxEvent
from payments.services import payment_process
from shop.models import CartItem
from shop.services.cart import cart_item_set
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

# The inbox rows (1, with BEGIN in front: common/db_backend), the orders locked (1) and confirmed (1),
# the cart lines (1), the SSE counters locked (1), the SSE events (1), the counters written (1), the
# sales (1), COMMIT; then the data-platform messages recorded (1). It was 11 with BEGIN on its own.
STATEMENTS = 10


def paid_events(count: int) -> list[Event]:
    """`count` PaymentCompleted events of as many users, each with the product in the cart and an SSE
    channel already in use (the steady state: a new channel costs two statements more, once)."""
    product = make_product(stock=count, price=5_000)
    for _ in range(count):
        user = UserFactory()
        fund(user, 100_000)
        cart_item_set(user_id=user.pk, product_id=product.pk, quantity=1)
        sse_push(user.pk, "warm-up", {})
        order = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(product.pk, 1)])
        payment_process(user_id=user.pk, order_id=order.pk, amount=order.final_amount)
    return [event_from_row(row) for row in OutboxEvent.objects.filter(type="PaymentCompleted").order_by("created_at")]


def statements_of(events: list[Event]) -> list[str]:
    storage._last_trim = time.monotonic()  # the once-a-minute trim of old SSE events is not counted
    with CaptureQueriesContext(connection) as captured:
        assert events_apply(events, source="test") == [True] * len(events)
    return executed_sql(captured)


@pytest.mark.parametrize("count", [1, 20])
def test_payment_completed_costs_the_same_statements_for_one_event_or_a_chunk(private_kafka, count):
    private_kafka("data-platform")
    events = paid_events(count)

    sql = statements_of(events)

    assert len(sql) == STATEMENTS, "\n".join(sql)
    assert Order.objects.filter(status="CONFIRMED").count() == count
    assert not CartItem.objects.exists()
