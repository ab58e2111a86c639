"""The authenticated user of a stateless JWT: the token's claims, no database row.

The signature only proves that our key signed the claims; the `user_id` claim is still checked for
shape. simplejwt issues it as the decimal string of the id (`AccessToken.for_user`); an int is
accepted too. Anything else (`"abc"`, `[901]`, `"９０１"`, `1.5`, `true`, `0`, a number beyond the id
column) is refused with 401 instead of failing later with a 500, or being coerced by `int()` into
another user's id.

Verified tokens are remembered per process (`VerifiedTokens`): a shopper sends the same access token
with every request for its hour, and checking its signature and claims again cost about a tenth of
the web process's CPU in the Black Friday mix (py-spy, docs/REPORT.md). A token is remembered under
its exact bytes, so a hit is a token this process already verified with the same key; the one check
that changes with time, expiry, is made again on every hit (with simplejwt's leeway). Nothing else
can revoke an access token here (the blacklist app is not installed: only refresh tokens could be
blacklisted). A bounded dict, emptied when full: memory stays small and a miss only costs a verify.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any

from django.contrib.auth import get_user_model
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.models import TokenUser
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings

MAX_USER_ID = 2**63 - 1  # BigAutoField


def claim_user_id(value: Any) -> int | None:
    """The user id a `user_id` claim names, or None when it is not a plain positive integer."""
    if isinstance(value, str):
        # Only the canonical decimal string simplejwt writes: ASCII digits, no sign, space or leading zero.
        if not (value.isascii() and value.isdigit() and len(value) <= 19 and not value.startswith("0")):
            return None
        value = int(value)
    if type(value) is int and 0 < value <= MAX_USER_ID:
        return value
    return None


def token_user_id(token) -> int:
    """The validated token's user id; InvalidToken (401) when the claim is missing or malformed."""
    user_id = claim_user_id(token.get(api_settings.USER_ID_CLAIM))
    if user_id is None:
        raise InvalidToken("Token contained no recognizable user identification")
    return user_id


class ShopTokenUser(TokenUser):
    """simplejwt stores the user id claim as a string; our ids are integers everywhere."""

    @cached_property
    def id(self) -> int:  # type: ignore[override]
        return token_user_id(self.token)

    @cached_property
    def pk(self) -> int:  # type: ignore[override]
        return self.id


class VerifiedTokens:
    """Tokens this process verified, by their bytes, with the time they stop being valid."""

    def __init__(self, size: int = 8192):
        self.size = size
        self._tokens: dict[bytes, tuple[Any, float]] = {}

    def get(self, raw_token: bytes):
        hit = self._tokens.get(raw_token)
        if hit is None:
            return None
        token, valid_until = hit
        if time.time() >= valid_until:  # expired since: verified again, and refused there
            self._tokens.pop(raw_token, None)
            return None
        return token

    def put(self, raw_token: bytes, token) -> None:
        exp = token.payload.get("exp")
        if type(exp) is not int:  # simplejwt verified it; anything unusual is simply not remembered
            return
        leeway = token.get_token_backend().get_leeway().total_seconds()
        if len(self._tokens) >= self.size:  # GIL-atomic dict operations: threads need no lock
            self._tokens.clear()
        self._tokens[raw_token] = (token, exp + leeway)

    def clear(self) -> None:
        self._tokens.clear()


verified_tokens = VerifiedTokens()


class ShopJWTAuthentication(JWTStatelessUserAuthentication):
    """simplejwt's stateless authentication, checking the `user_id` claim while authenticating and
    remembering verified tokens (see the module docstring)."""

    def get_validated_token(self, raw_token: bytes):
        token = verified_tokens.get(raw_token)
        if token is None:
            token = super().get_validated_token(raw_token)
            verified_tokens.put(raw_token, token)
        return token

    def get_user(self, validated_token) -> ShopTokenUser:
        token_user_id(validated_token)
        return ShopTokenUser(validated_token)


class ShopTokenRefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh, answering 401 (not a 500) for a malformed claim or a user that is gone."""

    def validate(self, attrs):
        try:
            refresh = self.token_class(attrs["refresh"])
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        user_id = token_user_id(refresh)
        if not get_user_model().objects.filter(pk=user_id, is_active=True).exists():
            raise AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account")
        return super().validate(attrs)
