"""Request bodies the JSON parser refuses: malformed, too deep, too large. Always a 4xx envelope."""

from __future__ import annotations

import io

import orjson
import pytest
from django.test import override_settings
from rest_framework.test import APIRequestFactory

from common.models import IdempotencyKey
from common.parsers import MAX_JSON_DEPTH, JSONParser, PayloadTooLarge, nesting_exceeds
from conftest import client_for
from shop.models import User, UserCoupon
from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SIGNUP = "/api/v1/users"  # anonymous
ISSUE = "/api/v1/coupons/issue"  # authenticated, throttled


def nested(levels: int, leaf: bytes = b"1") -> bytes:
    return b'{"a":' * levels + leaf + b"}" * levels


def post_raw(client, path: str, body: bytes, **extra):
    return client.generic("POST", path, body, content_type="application/json", **extra)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert body["success"] is False and body["errorCode"] == code, body
    assert isinstance(body["errorMessage"], str) and body["errorMessage"]
    return body


@pytest.mark.parametrize("key", [None, "k1"], ids=["no-key", "with-key"])
@pytest.mark.parametrize("body", [b"{", b'{"username": "a",}', b"\xff\xfe", b"[1, 2", b'"unterminated'])
def test_malformed_json_is_400_with_or_without_an_idempotency_key(api, key, body):
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    assert_error(post_raw(api, SIGNUP, body, **extra), 400, "MALFORMED_JSON")
    assert User.objects.count() == 0 and IdempotencyKey.objects.count() == 0


@pytest.mark.parametrize("key", [None, "k1"], ids=["no-key", "with-key"])
def test_malformed_json_on_an_authenticated_endpoint_leaves_no_claim(key):
    client = client_for(UserFactory())
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    assert_error(post_raw(client, ISSUE, b'{"couponId": 1', **extra), 400, "MALFORMED_JSON")
    assert IdempotencyKey.objects.count() == 0 and UserCoupon.objects.count() == 0


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1_000, 1_025, 100_000])
@pytest.mark.parametrize("key", [None, "k1"], ids=["no-key", "with-key"])
def test_deeply_nested_json_is_400_on_an_anonymous_endpoint(api, levels, key):
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    for body in (nested(levels), b"[" * levels + b"]" * levels):
        answer = assert_error(post_raw(api, SIGNUP, body, **extra), 400, "MALFORMED_JSON")
        assert f"deeper than {MAX_JSON_DEPTH} levels" in answer["errorMessage"]
    assert User.objects.count() == 0 and IdempotencyKey.objects.count() == 0


def test_nesting_up_to_the_limit_is_parsed(api):
    # 32 levels reach the serializer, which refuses the shape (400 INVALID_INPUT), not the parser.
    assert_error(post_raw(api, SIGNUP, nested(MAX_JSON_DEPTH)), 400, "INVALID_INPUT")


def test_nesting_is_measured_without_recursion():
    deep: list = []
    node = deep
    for _ in range(200_000):  # far past Python's recursion limit
        node.append([])
        node = node[0]
    assert nesting_exceeds(deep, MAX_JSON_DEPTH)
    assert not nesting_exceeds({"a": [1, {"b": [2, 3]}], "c": "[[[["}, 4)  # object, array, object, array
    assert nesting_exceeds({"a": [1, {"b": [2, 3]}]}, 3)
    assert not nesting_exceeds("[[[", 1) and not nesting_exceeds([], 1) and nesting_exceeds([[]], 1)
    # Brackets inside strings count for the quick pre-check only: the walk decides.
    parser_input = orjson.dumps({"text": "[" * 100})
    assert JSONParser().parse(io.BytesIO(parser_input)) == {"text": "[" * 100}


@override_settings(API_MAX_BODY_BYTES=1000)
def test_a_body_over_the_limit_is_413_by_its_content_length(api):
    body = orjson.dumps({"username": "x" * 1000})
    assert_error(post_raw(api, SIGNUP, body), 413, "PAYLOAD_TOO_LARGE")
    assert_error(post_raw(api, SIGNUP, body, HTTP_IDEMPOTENCY_KEY="k1"), 413, "PAYLOAD_TOO_LARGE")
    assert IdempotencyKey.objects.count() == 0


def test_a_5_mb_body_is_413_with_the_default_limit(api):
    body = b'{"username": "' + b"x" * 5_000_000 + b'"}'
    assert_error(post_raw(api, SIGNUP, body), 413, "PAYLOAD_TOO_LARGE")


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


@override_settings(API_MAX_BODY_BYTES=1000)
def test_a_body_longer_than_its_content_length_claims_is_not_read_past_the_limit():
    """A lying (or absent, as with chunked transfer) Content-Length cannot make the parser read more."""
    request = APIRequestFactory().post(SIGNUP, b"", content_type="application/json", CONTENT_LENGTH="10")
    stream = CountingStream(b"[" + b"1," * 1_000_000 + b"1]")
    with pytest.raises(PayloadTooLarge):
        JSONParser().parse(stream, "application/json", {"request": request})
    assert stream.bytes_read == 1001


@override_settings(API_MAX_BODY_BYTES=1000)
def test_a_body_of_exactly_the_limit_is_parsed():
    body = orjson.dumps({"a": "x" * 990})
    body += b" " * (1000 - len(body))
    assert JSONParser().parse(io.BytesIO(body)) == {"a": "x" * 990}
