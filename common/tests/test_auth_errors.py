"""Every 401 answers one plain sentence (simplejwt's InvalidToken detail is a dict; `str()` of it
put a Python repr with ErrorDetail(...) into errorMessage)."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from shop.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ME = "/api/v1/users/me"


def expired_token(user) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=5))
    return str(token)


def wrongly_signed_token(user) -> str:
    claims = jwt.decode(str(AccessToken.for_user(user)), options={"verify_signature": False})
    return jwt.encode(claims, "another-secret-key-of-enough-length-0123456789", algorithm="HS256")


CASES = {
    "no token": (None, "Authentication credentials were not provided."),
    "malformed token": (lambda u: "Bearer not-a-jwt", "Token is invalid."),
    "expired token": (lambda u: f"Bearer {expired_token(u)}", "Token is expired."),
    "wrong signature": (lambda u: f"Bearer {wrongly_signed_token(u)}", "Token is invalid."),
    "refresh token as access": (lambda u: f"Bearer {RefreshToken.for_user(u)}", "Token has wrong type."),
    "three parts": (lambda u: "Bearer a b", "Authorization header must contain two space-delimited values."),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_401_has_a_plain_sentence(api, case):
    header, message = CASES[case]
    if header is not None:
        api.credentials(HTTP_AUTHORIZATION=header(UserFactory()))
    response = api.get(ME)
    assert response.status_code == 401
    body = response.json()
    assert body == {"success": False, "errorCode": "UNAUTHORIZED", "errorMessage": message, "data": None}
    assert response["WWW-Authenticate"]


def test_refresh_with_a_bad_token_is_a_plain_sentence(api):
    response = api.post("/api/v1/auth/token/refresh", {"refresh": "x"}, format="json")
    assert response.status_code == 401
    assert response.json()["errorMessage"] == "Token is invalid."
