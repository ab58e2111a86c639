"""The real WSGI application (config.wsgi): `/api/` through the API's short middleware list, the
browser pages (admin, demo) through the full one. The test client always uses the full list, so
this calls the application itself."""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest

from orders.tests.helpers import make_product

pytestmark = pytest.mark.django_db(transaction=True)  # the real handler opens and closes connections


def call(path: str) -> tuple[str, dict[str, str], bytes]:
    from config.wsgi import application

    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO(b"")}
    setup_testing_defaults(environ)
    environ["SERVER_NAME"] = environ["HTTP_HOST"] = "testserver"
    answer: dict = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], body


def test_the_api_skips_the_browser_pages_middleware():
    product = make_product()
    status, headers, body = call(f"/api/v1/products/{product.pk}")
    assert status.startswith("200") and json.loads(body)["data"]["id"] == product.pk
    assert "X-Frame-Options" not in headers  # no clickjacking middleware
    assert "Cookie" not in headers.get("Vary", "")  # no session, no CSRF cookie
    assert "Set-Cookie" not in headers


def test_the_admin_keeps_sessions_csrf_and_frame_protection():
    status, headers, _ = call("/admin/login/")
    assert status.startswith("200")
    assert headers["X-Frame-Options"] == "DENY"
    assert "csrftoken=" in headers.get("Set-Cookie", "")


def test_unknown_api_paths_answer_the_json_envelope():
    status, headers, body = call("/api/v1/nothing-here")
    assert status.startswith("404") and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["errorCode"] == "NOT_FOUND"


def test_a_body_in_memory_is_handed_over_as_one_chunk_after_the_request_finished():
    from django.core.signals import request_finished

    from config.wsgi import application

    finished = []

    def on_finished(sender, **kwargs):
        finished.append(sender)

    request_finished.connect(on_finished, dispatch_uid="test-wsgi-finished")
    try:
        environ: dict = {"PATH_INFO": "/healthz", "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO(b"")}
        setup_testing_defaults(environ)
        answer = application(environ, lambda status, headers, exc_info=None: None)
    finally:
        request_finished.disconnect(dispatch_uid="test-wsgi-finished")
    assert isinstance(answer, list) and len(answer) == 1 and answer[0]
    assert len(finished) == 1  # closed by the application, not left to the server
