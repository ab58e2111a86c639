"""SSE storage details the fault tests rely on (real database and Redis)."""

import pytest
from django_eventstream.models import Event as EventRow

from common.sse.push import _stored_copy, sse_push
from common.sse.storage import user_channel

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_retried_push_recognises_the_copy_a_lost_commit_acknowledgement_left():
    """`sse_push(retry_seconds=...)` looks for the stored copy before storing again: the payload
    names its subject, so an equal payload on the channel is the same notification."""
    data = {"orderId": 987_654, "paymentId": 12, "amount": 1_000, "status": "CONFIRMED"}
    channel = user_channel(424_242)
    assert _stored_copy(channel, "order-completed", data) is None

    sse_push(424_242, "order-completed", data)

    copy = _stored_copy(channel, "order-completed", data)
    assert copy is not None and copy.channel == channel and copy.eid == 1
    assert _stored_copy(channel, "order-completed", {**data, "orderId": 987_655}) is None
    assert _stored_copy(channel, "order-cancelled", data) is None
    assert EventRow.objects.filter(channel=channel, eid__gt=0).count() == 1
