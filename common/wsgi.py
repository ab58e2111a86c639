"""The WSGI application: the REST API under a shorter middleware list than the admin and demo pages.

Sessions, CSRF, Django's authentication, messages, clickjacking headers and the admin-login lockout
serve the browser pages only: the API authenticates every call with a bearer token and never reads
a session or a cookie. Running them anyway cost about a quarter of a cached catalog read's CPU
(docs/REPORT.md), so requests under `/api/` go through a handler built from `API_MIDDLEWARE`, and
everything else through Django's usual one (`MIDDLEWARE`). The test client always uses the full
list; tests/test_wsgi.py checks the routing on the real application.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

API_PREFIX = "/api/"
_building = threading.Lock()


class ApiHandler(WSGIHandler):
    """Django's WSGI handler with `settings.API_MIDDLEWARE` instead of `settings.MIDDLEWARE`."""

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler.load_middleware reads settings.MIDDLEWARE once: give it the API's list for that
        # moment (at start-up, before any request is served).
        with _building:
            site = settings.MIDDLEWARE
            settings.MIDDLEWARE = settings.API_MIDDLEWARE
            try:
                super().load_middleware(is_async)
            finally:
                settings.MIDDLEWARE = site


class PathRoutedApplication:
    """`/api/...` to the API handler, the rest (admin, demo, docs, health, metrics) to Django's own.

    A response with its body in memory (every JSON answer) is handed to the server as a one-item list
    and closed here (Django's request_finished work), rather than as Django's response object: granian
    writes a list in one call, while it walks any other iterable chunk by chunk and calls `close()`
    after, each step taking the GIL again. Streaming responses (files, SSE) are passed on as they are."""

    def __init__(self, site: WSGIHandler, api: WSGIHandler):
        self.site, self.api = site, api

    def __call__(self, environ, start_response):
        handler = self.api if environ.get("PATH_INFO", "").startswith(API_PREFIX) else self.site
        response = handler(environ, start_response)
        if response.streaming:
            return response
        try:
            return [response.content]
        finally:
            response.close()
