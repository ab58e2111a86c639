"""The envelope renderer (orjson) writes byte for byte what DRF's JSONRenderer writes."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import uuid
from zoneinfo import ZoneInfo

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from common.api import EnvelopeRenderer


@dataclasses.dataclass
class Point:
    x: int


SEOUL = ZoneInfo("Asia/Seoul")
CASES = {
    "order": ReturnDict(
        {
            "orderId": 2**62,
            "orderNumber": "ORD-1",
            "deliveryAddress": "서울 강남구 테헤란로 123 😀",
            "userCouponId": None,
            "items": ReturnList([{"giftWrap": True, "unitPrice": 0, "lineTotal": -5}], serializer=None),
        },
        serializer=None,
    ),
    "every BMP character up to U+3100, and U+2028/U+2029": "".join(chr(i) for i in range(0x3100)) + "\u2028\u2029",
    "datetimes, dates, times, timedeltas": [
        datetime.datetime(2026, 12, 3, 8, 9, 5, 123456, tzinfo=datetime.UTC),
        datetime.datetime(2026, 12, 3, 17, 9, 5, tzinfo=SEOUL),
        datetime.datetime(2026, 12, 3, 17, 9, 5),
        datetime.date(2026, 12, 3),
        datetime.time(17, 9, 5, 1),
        datetime.timedelta(seconds=90),
    ],
    "uuid, decimal, lazy text, bytes, tuple": {
        "u": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "d": decimal.Decimal("12.50"),
        "t": gettext_lazy("Not found."),
        "b": b"raw",
        "tuple": (1, "2"),
        "empty list": ReturnList([], serializer=None),
    },
    "validation errors with list indexes as keys": {
        "fields": {"items": {0: {"quantity": [ErrorDetail("A JSON integer is required.", code="not_integer")]}}}
    },
    "numbers": [0, -1, 2**63 - 1, -(2**63), 2**70, 0.1, 1.5, 1e16, 100.0, True, False, None],
    "empty": {},
}


@pytest.mark.parametrize("data", CASES.values(), ids=list(CASES))
@pytest.mark.parametrize("status", [200, 400])
def test_the_same_bytes_as_drf(data, status):
    class FakeResponse:
        status_code = status

    context = {"response": FakeResponse()}
    expected_data = {"success": True, "data": data} if status < 400 else data
    assert EnvelopeRenderer().render(data, "application/json", context) == JSONRenderer().render(expected_data)


def test_an_indent_asked_for_is_drfs():
    rendered = EnvelopeRenderer().render({"a": [1]}, "application/json; indent=2", {})
    assert rendered == JSONRenderer().render({"a": [1]}, "application/json; indent=2", {}) and b"\n" in rendered


def test_a_dataclass_is_refused_as_before():
    with pytest.raises(TypeError):
        JSONRenderer().render({"p": Point(1)})
    with pytest.raises(TypeError):
        EnvelopeRenderer().render({"p": Point(1)}, "application/json", {})
