"""The SSE process (the Procfile's `sse`, uvicorn on config.asgi) serves the event stream and nothing else.

Started for real on a free port. Every answer is the JSON envelope: no admin, API or metrics, no HTML
(no CSRF page for a POST), and the same token checks as the API.
"""

from __future__ import annotations

import os

import pytest
import requests

from common.tests.test_jwt import BAD_CLAIMS, PUBLISHED_KEY, SSE_SALT, signed
from tests.edge import Child, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sse_url(tmp_path_factory):
    port = free_port()
    env = {**os.environ, "SSE_PORT": str(port), "DB_NAME": "no_such_database_sse_process_test"}
    with Child("sse", env, tmp_path_factory.mktemp("sse")) as child:
        url = f"http://127.0.0.1:{port}"
        child.wait_http(f"{url}/healthz")
        yield url


def assert_envelope(response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert (body["success"], body["errorCode"]) == (False, code), body


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/login/", "/api/v1/products", "/api/v1/users/me", "/metrics", "/readyz", "/"]
)
def test_routes_of_the_web_process_are_404_here(sse_url, path):
    assert_envelope(requests.get(f"{sse_url}{path}", timeout=10, allow_redirects=False), 404, "NOT_FOUND")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_the_stream_are_405_not_a_csrf_page(sse_url, method):
    response = requests.request(method, f"{sse_url}/api/sse/subscribe/1", data=b"x=1", timeout=10)
    assert_envelope(response, 405, "METHOD_NOT_ALLOWED")


def test_a_post_to_an_unknown_path_is_404(sse_url):
    assert_envelope(requests.post(f"{sse_url}/admin/login/", data={"a": "b"}, timeout=10), 404, "NOT_FOUND")


def test_healthz_answers(sse_url):
    response = requests.get(f"{sse_url}/healthz", timeout=10)
    assert (response.status_code, response.json()) == (200, {"success": True, "data": {"status": "ok"}})


def test_forged_and_malformed_tokens_are_refused(sse_url):
    from django.core.signing import TimestampSigner

    url = f"{sse_url}/api/sse/subscribe/901"
    forged_sse = TimestampSigner(key=PUBLISHED_KEY, salt=SSE_SALT).sign("901")
    assert_envelope(requests.get(f"{url}?token={forged_sse}", timeout=10), 401, "UNAUTHORIZED")
    forged_access = signed({"user_id": "901"}, key=PUBLISHED_KEY)
    headers = {"Authorization": f"Bearer {forged_access}"}
    assert_envelope(requests.get(url, headers=headers, timeout=10), 401, "UNAUTHORIZED")
    # Control: the same claims signed with our key get past authentication to the user lookup, which
    # fails on purpose (this process has no database): the refusals above and below are the key's and
    # the claim's, not a process that cannot verify our tokens.
    ours = {"Authorization": f"Bearer {signed({'user_id': '901'})}"}
    assert_envelope(requests.get(url, headers=ours, timeout=10), 503, "DATABASE_UNAVAILABLE")
    for name, make_claim in BAD_CLAIMS.items():
        headers = {"Authorization": f"Bearer {signed({'user_id': make_claim(901)})}"}
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 401, (name, response.text[:300])
        assert_envelope(response, 401, "UNAUTHORIZED")
