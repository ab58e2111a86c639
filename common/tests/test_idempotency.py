import threading

import pytest
from django.db import connection

from common.models import IdempotencyKey
from conftest import client_for
from shop.models import Category

pytestmark = pytest.mark.urls("common.tests.urls")


@pytest.mark.django_db
def test_same_key_same_body_replays_the_first_response(auth_api):
    first = auth_api.post("/slow", {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = auth_api.post("/slow", {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Category.objects.count() == 1


@pytest.mark.django_db
def test_same_key_other_body_is_422_and_changes_nothing(auth_api):
    auth_api.post("/slow", {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    other = auth_api.post("/slow", {"name": "b"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert other.status_code == 422
    assert other.json()["errorCode"] == "IDEMPOTENCY_KEY_REUSED"
    assert list(Category.objects.values_list("name", flat=True)) == ["a"]


@pytest.mark.django_db
def test_keys_are_per_user(auth_api, other_user):
    auth_api.post("/slow", {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    response = client_for(other_user).post("/slow", {"name": "b"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 201
    assert Category.objects.count() == 2


@pytest.mark.django_db
def test_refusal_rolls_back_and_frees_the_key(auth_api):
    refused = auth_api.post("/slow", {"name": "a", "refuse": True}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert refused.status_code == 409
    assert Category.objects.count() == 0 and IdempotencyKey.objects.count() == 0
    retried = auth_api.post("/slow", {"name": "a", "refuse": True}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert retried.status_code == 409  # re-executed, not replayed


@pytest.mark.django_db
def test_response_is_stored_in_the_business_transaction(auth_api):
    auth_api.post("/slow", {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    key = IdempotencyKey.objects.get()
    assert key.status == "DONE" and key.response_status == 201
    assert key.response_body == {"id": Category.objects.get().pk, "name": "a"}


@pytest.mark.django_db(transaction=True)
def test_concurrent_second_request_is_409_in_flight(user):
    results = {}

    def call(name, sleep):
        try:
            results[name] = client_for(user).post(
                "/slow", {"name": "a", "sleep": sleep}, format="json", HTTP_IDEMPOTENCY_KEY="k-race"
            )
        finally:
            connection.close()

    slow = threading.Thread(target=call, args=("first", 1.0))
    slow.start()
    # wait until the first request's claim is committed, then fire the second one
    for _ in range(100):
        if IdempotencyKey.objects.filter(key="k-race").exists():
            break
        threading.Event().wait(0.02)
    call("second", 1.0)
    slow.join()
    assert results["first"].status_code == 201
    assert results["second"].status_code == 409
    assert results["second"].json()["errorCode"] == "IDEMPOTENCY_KEY_IN_FLIGHT"
    assert Category.objects.count() == 1
    replay = client_for(user).post("/slow", {"name": "a", "sleep": 1.0}, format="json", HTTP_IDEMPOTENCY_KEY="k-race")
    assert replay.status_code == 201 and replay.json() == results["first"].json()


@pytest.mark.django_db
def test_keys_are_case_sensitive(auth_api):
    """`k1` and `K1` are two keys (the column's default collation compared them case-insensitively)."""
    first = auth_api.post("/slow", {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    second = auth_api.post("/slow", {"name": "b"}, format="json", HTTP_IDEMPOTENCY_KEY="K1")
    assert first.status_code == second.status_code == 201, second.content
    assert "Idempotent-Replayed" not in second
    assert first.json()["data"]["id"] != second.json()["data"]["id"]
    assert sorted(IdempotencyKey.objects.values_list("key", flat=True)) == ["K1", "k1"]
    assert Category.objects.count() == 2
    replay = auth_api.post("/slow", {"name": "b"}, format="json", HTTP_IDEMPOTENCY_KEY="K1")
    assert replay["Idempotent-Replayed"] == "true" and replay.json() == second.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "key",
    ["k\x01", "k 1", " ", "", "k\t1", "k\x7f", "ключ", "k\u00e9", "x" * 256],
    ids=["control", "space", "only-space", "empty", "tab", "del", "cyrillic", "latin1", "too-long"],
)
def test_keys_must_be_printable_ascii_without_spaces(auth_api, key):
    response = auth_api.post("/slow", {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400, response.content
    assert response.json()["errorCode"] == "INVALID_IDEMPOTENCY_KEY"
    assert Category.objects.count() == 0 and IdempotencyKey.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["!", "~" * 255, "a-Z_0.9:/+=@{}"])
def test_every_printable_ascii_key_up_to_255_characters_is_accepted(auth_api, key):
    response = auth_api.post("/slow", {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201
    assert IdempotencyKey.objects.get().key == key


@pytest.mark.django_db
def test_a_malformed_body_with_a_key_is_400_and_leaves_no_claim(auth_api):
    """The fingerprint read `request.body` after DRF had consumed the stream: 500 RawPostDataException."""
    for key in ("k1", None):
        extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        response = auth_api.generic("POST", "/slow", '{"name": ', content_type="application/json", **extra)
        assert response.status_code == 400, response.content
        assert response.json()["errorCode"] == "MALFORMED_JSON"
    assert IdempotencyKey.objects.count() == 0 and Category.objects.count() == 0
    # The key is still free for the corrected request.
    assert auth_api.post("/slow", {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k1").status_code == 201
