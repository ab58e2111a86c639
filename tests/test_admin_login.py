"""`/admin/login/` brute force: after AXES_FAILURE_LIMIT wrong passwords from one address, that
address is locked out (429, even with the right password) until the cool-off or `axes_reset`.
The API's token endpoint is not part of it (it has the `auth` throttle)."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "correct-horse-battery"


@pytest.fixture
def operator():
    user = UserFactory(is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def login(client: Client, username: str, password: str, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def test_wrong_passwords_lock_the_address_out_until_reset(operator):
    attacker = Client(REMOTE_ADDR="198.51.100.10")
    limit = settings.AXES_FAILURE_LIMIT
    assert limit == 10
    answers = [login(attacker, operator.username, f"guess-{i}").status_code for i in range(limit + 5)]
    assert answers[: limit - 1] == [200] * (limit - 1)  # the form again, "please enter a correct ..."
    assert answers[limit - 1 :] == [429] * 6  # locked out from the limit on
    locked = login(attacker, operator.username, PASSWORD)
    assert locked.status_code == 429 and "_auth_user_id" not in attacker.session  # even the right password
    # Another address is not affected.
    assert login(Client(REMOTE_ADDR="192.0.2.20"), operator.username, PASSWORD).status_code == 302

    call_command("axes_reset")  # what an operator runs (or `axes_reset_ip 198.51.100.10`)

    assert login(attacker, operator.username, PASSWORD).status_code == 302


def test_the_address_is_the_one_the_throttles_use(operator, settings):
    """A forged X-Forwarded-For neither spreads the attempts (no trusted proxy by default) ..."""
    attacker = Client(REMOTE_ADDR="198.51.100.11")
    for i in range(settings.AXES_FAILURE_LIMIT):
        login(attacker, operator.username, "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
    assert login(attacker, operator.username, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 429
    # ... and behind one trusted proxy the last hop is the client (so one client cannot lock out the proxy).
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    behind_proxy = Client(REMOTE_ADDR="198.51.100.11")
    ok = login(behind_proxy, operator.username, PASSWORD, HTTP_X_FORWARDED_FOR="1.1.1.1, 192.0.2.30")
    assert ok.status_code == 302


def test_api_token_failures_are_not_recorded_nor_locked_out(api, operator):
    for _ in range(settings.AXES_FAILURE_LIMIT + 5):
        wrong = api.post("/api/v1/auth/token", {"username": operator.username, "password": "x"}, format="json")
        assert wrong.status_code == 401
    right = api.post("/api/v1/auth/token", {"username": operator.username, "password": PASSWORD}, format="json")
    assert right.status_code == 200 and right.json()["data"]["access"]
    assert AccessAttempt.objects.count() == 0
