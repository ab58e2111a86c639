"""`GET /api/sse/subscribe/{userId}`: a user's own event stream, served by the ASGI process.

Browsers' `EventSource` cannot send an Authorization header, so this endpoint (and only this one)
also accepts `?token=<signed user id>`, a short-lived token from `POST /api/v1/sse/token`
(`TimestampSigner`, SSE_TOKEN_MAX_AGE seconds; it only opens a stream, it is no API credential).
Other clients may send the usual `Authorization: Bearer <access token>`.

django-eventstream does the rest: `Last-Event-ID` (or `?lastEventId=`) replays stored events, and
events sent by any process arrive through Redis pub/sub (settings.EVENTSTREAM_REDIS). The channel
manager (`common.sse.storage.UserChannelManager`) checks again that the channel is the user's own.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.handlers.asgi import ASGIRequest
from django.core.signing import BadSignature, TimestampSigner
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_eventstream.views import events
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from common.api import error_body
from common.jwt import ShopJWTAuthentication, claim_user_id
from common.sse.storage import user_channel

_SALT = "orders.sse.subscribe"  # kept as it is: another salt would void every token already issued


def sse_token_issue(*, user_id: int) -> str:
    return TimestampSigner(salt=_SALT).sign(str(user_id))


def sse_token_user_id(token: str) -> int | None:
    """The user id a valid, unexpired token names; None otherwise."""
    try:
        value = TimestampSigner(salt=_SALT).unsign(token, max_age=settings.SSE_TOKEN_MAX_AGE)
    except BadSignature:
        return None
    return claim_user_id(value)


def subscribe_url(user_id: int, token: str) -> str:
    return f"{settings.SSE_PUBLIC_URL}/api/sse/subscribe/{user_id}?token={token}"


def _authenticate(request: HttpRequest):
    token = request.GET.get("token")
    if token is not None:
        user_id = sse_token_user_id(token)
        if user_id is None:
            return None
        return get_user_model().objects.filter(pk=user_id, is_active=True).first()
    try:
        found = ShopJWTAuthentication().authenticate(request)  # type: ignore[arg-type]
    except (AuthenticationFailed, InvalidToken, TokenError):
        return None
    if not found:
        return None
    return get_user_model().objects.filter(pk=found[0].pk, is_active=True).first()


def allow_origin(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    """CORS for EventSource across ports/hosts: echo an allowed page origin."""
    origin = request.headers.get("Origin")
    if origin and origin in settings.SSE_ALLOWED_ORIGINS:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


def sse_refuse(request: HttpRequest, status: int, code: str, message: str, data=None) -> HttpResponse:
    return allow_origin(JsonResponse(error_body(code, message, data), status=status), request)


@csrf_exempt  # GET only, authenticated by token, never by cookie: a POST gets the JSON 405 below
def sse_subscribe(request: HttpRequest, user_id: int) -> HttpResponse:
    if request.method != "GET":
        return sse_refuse(request, 405, "METHOD_NOT_ALLOWED", "Only GET is allowed.")
    user = _authenticate(request)
    if user is None:
        return sse_refuse(request, 401, "UNAUTHORIZED", "A valid ?token= or Bearer access token is required.")
    if user.pk != user_id:
        return sse_refuse(request, 403, "FORBIDDEN", "You may only read your own event stream.")
    if not isinstance(request, ASGIRequest):  # under WSGI the stream never flushes and pins a worker
        return sse_refuse(
            request,
            421,
            "SSE_WRONG_SERVER",
            "Event streams are served by the SSE process.",
            {"sseUrl": settings.SSE_PUBLIC_URL},
        )
    request.user = user
    response = events(request, channels=[user_channel(user_id)])
    connection.close()  # the stream outlives this thread's work: do not hold a connection meanwhile
    return allow_origin(response, request)
