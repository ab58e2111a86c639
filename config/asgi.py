"""ASGI entry point: serves the SSE stream (django-eventstream needs ASGI to flush).

This process answers only the routes of `config.urls_sse`: each request carries that urlconf
(Django resolves `request.urlconf` before ROOT_URLCONF), so the admin, the REST API and /metrics
stay on the WSGI process, and an unknown path is the JSON 404 envelope.
"""

import os

import django
from django.core.handlers.asgi import ASGIHandler, ASGIRequest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class SSERequest(ASGIRequest):
    urlconf = "config.urls_sse"


class SSEHandler(ASGIHandler):
    request_class = SSERequest


django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application does before its handler
application = SSEHandler()
