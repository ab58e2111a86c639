"""Tokens: only our key signs them, and only a plain positive integer names a user.

The API is authenticated by `common.jwt.ShopJWTAuthentication`, the SSE subscribe view by the same
class (Bearer) or by a signed `?token=`, the refresh endpoint by `ShopTokenRefreshSerializer`.
"""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings
from django.core.signing import TimestampSigner
from rest_framework.test import APIClient
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from common.jwt import VerifiedTokens, verified_tokens
from common.sse.views import sse_token_issue

pytestmark = pytest.mark.django_db

# The signing key this repository used to ship for every non-production run (an attacker has it).
PUBLISHED_KEY = "local-development-secret-key-not-for-production-use-0123456789"
SSE_SALT = "orders.sse.subscribe"


def signed(claims: dict, key: str = "", token_type: str = "access") -> str:
    """A token with these claims, signed with `key` (by default, our own)."""
    now = int(time.time())
    payload = {"token_type": token_type, "exp": now + 600, "iat": now, "jti": uuid.uuid4().hex, **claims}
    return TokenBackend("HS256", key or settings.SIMPLE_JWT["SIGNING_KEY"]).encode(payload)


def get(path: str, token: str):
    return APIClient().get(path, HTTP_AUTHORIZATION=f"Bearer {token}")


def assert_unauthorized(response) -> None:
    assert response.status_code == 401, response.content
    body = response.json()
    assert (body["success"], body["errorCode"], body["data"]) == (False, "UNAUTHORIZED", None), body
    assert "{" not in body["errorMessage"] and "ErrorDetail" not in body["errorMessage"], body


def test_the_signing_key_is_not_the_published_one():
    assert settings.SECRET_KEY != PUBLISHED_KEY
    assert settings.SIMPLE_JWT["SIGNING_KEY"] == settings.SECRET_KEY


def test_an_access_token_signed_with_the_published_key_is_refused(user):
    forged = signed({"user_id": str(user.pk)}, key=PUBLISHED_KEY)
    assert_unauthorized(get(f"/api/v1/points/{user.pk}", forged))
    assert_unauthorized(get("/api/v1/users/me", forged))
    assert_unauthorized(get(f"/api/sse/subscribe/{user.pk}", forged))
    # the same claims signed with our key are accepted: only the key differs
    assert get("/api/v1/users/me", signed({"user_id": str(user.pk)})).status_code == 200


def test_a_refresh_token_signed_with_the_published_key_is_refused(user):
    forged = signed({"user_id": str(user.pk)}, key=PUBLISHED_KEY, token_type="refresh")
    assert_unauthorized(APIClient().post("/api/v1/auth/token/refresh", {"refresh": forged}, format="json"))


def test_an_sse_token_signed_with_the_published_key_is_refused(user):
    forged = TimestampSigner(key=PUBLISHED_KEY, salt=SSE_SALT).sign(str(user.pk))
    assert_unauthorized(APIClient().get(f"/api/sse/subscribe/{user.pk}?token={forged}"))
    # ours opens the stream (the WSGI test client is then sent to the SSE process: 421)
    ours = sse_token_issue(user_id=user.pk)
    assert APIClient().get(f"/api/sse/subscribe/{user.pk}?token={ours}").status_code == 421


def fullwidth(n: int) -> str:
    return "".join(chr(ord("０") + int(d)) for d in str(n))


# Each value is derived from the caller's own id where it could be mistaken for it (`int()` turns
# "９０１" into 901 and 1.5 into 1): before, those authenticated as a user the token does not name.
BAD_CLAIMS = {
    "letters": lambda pk: "abc",
    "list": lambda pk: [pk],
    "fullwidth-digits": fullwidth,
    "float": lambda pk: pk + 0.5,
    "float-integral": lambda pk: float(pk),
    "bool": lambda pk: True,
    "negative": lambda pk: -pk,
    "negative-string": lambda pk: f"-{pk}",
    "zero": lambda pk: 0,
    "zero-string": lambda pk: "0",
    "leading-zero": lambda pk: f"0{pk}",
    "spaces": lambda pk: f" {pk} ",
    "huge": lambda pk: 2**63,
    "huge-string": lambda pk: "9" * 30,
    "very-long-string": lambda pk: "1" * 5000,
    "null": lambda pk: None,
    "object": lambda pk: {"id": pk},
}


@pytest.mark.parametrize("make_claim", BAD_CLAIMS.values(), ids=BAD_CLAIMS.keys())
def test_a_user_id_claim_that_is_not_a_plain_positive_integer_is_401(user, make_claim):
    token = signed({"user_id": make_claim(user.pk)})
    assert_unauthorized(get("/api/v1/users/me", token))
    assert_unauthorized(get(f"/api/v1/points/{user.pk}", token))
    assert_unauthorized(get(f"/api/sse/subscribe/{user.pk}", token))
    refresh = signed({"user_id": make_claim(user.pk)}, token_type="refresh")
    assert_unauthorized(APIClient().post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json"))


def test_a_token_without_user_id_claim_is_401(user):
    assert_unauthorized(get("/api/v1/users/me", signed({})))
    assert_unauthorized(get(f"/api/sse/subscribe/{user.pk}", signed({})))


@pytest.mark.parametrize("claim", ["string", "int"])
def test_the_claims_we_issue_are_accepted(user, claim):
    """simplejwt writes the id as a string (`AccessToken.for_user`); an int claim names the same user."""
    issued = AccessToken.for_user(user)
    assert issued["user_id"] == str(user.pk)
    token = str(issued) if claim == "string" else signed({"user_id": user.pk})
    me = get("/api/v1/users/me", token)
    assert (me.status_code, me.json()["data"]["id"]) == (200, user.pk)
    # SSE: authenticated, then told to use the SSE process (421), not refused
    assert get(f"/api/sse/subscribe/{user.pk}", token).status_code == 421


def test_refresh_still_works_and_refuses_a_deleted_user(user):
    refresh = str(RefreshToken.for_user(user))
    answer = APIClient().post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json")
    assert answer.status_code == 200, answer.json()
    assert get("/api/v1/users/me", answer.json()["data"]["access"]).status_code == 200
    user.delete()
    assert_unauthorized(APIClient().post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json"))


def test_an_invalid_token_answers_a_plain_message():
    """simplejwt's InvalidToken carries a dict; the envelope shows its sentence, not a Python repr."""
    response = get("/api/v1/users/me", "not-a-token")
    assert_unauthorized(response)
    assert response.json()["errorMessage"] == "Token is invalid."


# --- verified tokens remembered per process (common.jwt.VerifiedTokens) ------------------------------------------
def test_a_remembered_token_is_refused_once_it_expires(user):
    verified_tokens.clear()
    now = int(time.time())
    token = TokenBackend("HS256", settings.SIMPLE_JWT["SIGNING_KEY"]).encode(
        {"token_type": "access", "exp": now + 2, "iat": now, "jti": uuid.uuid4().hex, "user_id": str(user.pk)}
    )
    assert get("/api/v1/users/me", token).status_code == 200
    assert verified_tokens.get(token.encode()) is not None  # remembered: the next request is not verified again
    assert get("/api/v1/users/me", token).status_code == 200
    time.sleep(max(0.0, now + 2 - time.time()) + 0.1)  # past its exp (no leeway configured)
    assert verified_tokens.get(token.encode()) is None
    assert_unauthorized(get("/api/v1/users/me", token))


def test_a_token_is_remembered_by_its_exact_bytes(user):
    verified_tokens.clear()
    genuine = signed({"user_id": str(user.pk)})
    assert get("/api/v1/users/me", genuine).status_code == 200
    head, payload, signature = genuine.split(".")
    other_claims = signed({"user_id": str(user.pk + 1)}).split(".")[1]
    # the genuine token's signature on other claims, and the genuine claims with a changed signature
    assert_unauthorized(get("/api/v1/users/me", f"{head}.{other_claims}.{signature}"))
    changed = ("B" if signature[0] != "B" else "C") + signature[1:]  # the first character: 6 whole bits
    assert_unauthorized(get("/api/v1/users/me", f"{head}.{payload}.{changed}"))
    assert_unauthorized(get("/api/v1/users/me", signed({"user_id": str(user.pk)}, key=PUBLISHED_KEY)))


def test_the_memory_is_bounded():
    tokens = VerifiedTokens(size=2)
    access = AccessToken()
    for raw in (b"a", b"b", b"c"):
        tokens.put(raw, access)
    assert tokens.get(b"c") is access and tokens.get(b"a") is None  # emptied when full, then filled again
