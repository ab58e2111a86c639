"""Shared fixtures. Tests run against the real MariaDB, Redis and broker that `make services` starts."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

pytest_plugins = ["tests.support.fixtures"]  # children, private_kafka, throwaway_redis


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache namespace (only our test prefix is touched)."""
    for alias in ("default", "typed"):
        caches[alias].delete_pattern("*")
    yield


@pytest.fixture
def api():
    return APIClient()


def bearer(user) -> str:
    return f"Bearer {AccessToken.for_user(user)}"


@pytest.fixture
def user(db):
    from shop.tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def other_user(db):
    from shop.tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def operator(client, db):
    """The Django test client signed in as a staff superuser: the admin's operator."""
    from shop.tests.factories import UserFactory

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def auth_api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bearer(user))
    client.user = user
    return client


def executed_sql(captured) -> list[str]:
    """The statements a CaptureQueriesContext saw, one per round trip. A transaction's BEGIN travels in front
    of its first statement (`BEGIN;\n<statement>`, common/db_backend); it is left out here, so tests read
    each statement as it is written."""
    return [query["sql"].removeprefix("BEGIN;\n") for query in captured.captured_queries]


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bearer(user))
    client.user = user
    return client
