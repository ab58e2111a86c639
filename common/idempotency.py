"""`Idempotency-Key` for every state-changing POST, as one decorator.

    class CheckoutView(APIView):
        @idempotent
        def post(self, request): ...

Without the header the view runs in one retried transaction. With it:
1. claim: insert (user, key, fingerprint) as IN_FLIGHT, committed at once (autocommit); if the
   row exists: DONE + same fingerprint -> replay the stored response; different fingerprint ->
   422 IDEMPOTENCY_KEY_REUSED; IN_FLIGHT -> 409 IDEMPOTENCY_KEY_IN_FLIGHT (a claim older than
   IDEMPOTENCY_STALE_SECONDS is taken over: its owner died);
2. the view runs in the business transaction, and the response is stored in that same
   transaction (so a committed effect always has its stored answer, and vice versa);
3. a refusal or crash rolls the business transaction back and deletes the claim.

The view reads the key as `request.idempotency_key` (None without the header). A view with
`atomic=False` commits its effect before its answer is stored: if its process dies in between, the
retry that takes over the stale claim runs the view again. Such a view stores the key with its
effect (in the same INSERT) and answers a retry with the effect it finds (orders/queue/admission.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from common.db import run_in_transaction
from common.errors import IdempotencyKeyInFlight, IdempotencyKeyReused, InvalidIdempotencyKey
from common.models import IdempotencyKey

HEADER = "Idempotency-Key"
# The same header as WSGI names it: read from META, because `request.headers` builds a dict of every
# header on first use (3 % of a sold-out refusal's CPU, py-spy).
_META_KEY = "HTTP_" + HEADER.upper().replace("-", "_")
# Printable ASCII without space (0x21..0x7E), 1..255 characters; compared byte for byte (the
# columns holding keys use a binary collation: `k1` and `K1` are two keys).
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
REPLAY_HEADER = "Idempotent-Replayed"


def _fingerprint(request) -> str:
    # `request.data` parses the body here, before any claim is written: a body that does not parse
    # (or is too large, or too deep) is refused exactly as without the header, and leaves no row.
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    raw = f"{request.method}\n{request.get_full_path()}\n{body}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _claim(user_id: int, key: str, request) -> IdempotencyKey | Response:
    fingerprint = _fingerprint(request)
    fields = {"user_id": user_id, "key": key, "method": request.method, "path": request.path[:255]}
    try:
        return _insert_claim(fingerprint=fingerprint, **fields)
    except IntegrityError:
        pass
    existing = IdempotencyKey.objects.filter(user_id=user_id, key=key).first()
    if existing is None:  # deleted between our insert and read: the first attempt failed
        return _claim(user_id, key, request)
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    if existing.status == IdempotencyKey.Status.DONE:
        response = Response(existing.response_body, status=existing.response_status)
        response[REPLAY_HEADER] = "true"
        return response
    stale_before = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS)
    taken = IdempotencyKey.objects.filter(
        pk=existing.pk, status=IdempotencyKey.Status.IN_FLIGHT, updated_at__lt=stale_before
    ).update(updated_at=timezone.now())
    if taken:
        existing.refresh_from_db()
        return existing
    raise IdempotencyKeyInFlight()


def _insert_claim(**fields) -> IdempotencyKey:
    """Insert the IN_FLIGHT row, committed at once. Outside a transaction (as views run) that is one
    autocommitted INSERT: one round trip instead of SET autocommit, INSERT, COMMIT, SET autocommit.
    Inside one (a caller's atomic block) a savepoint keeps a duplicate from aborting it."""
    if not transaction.get_connection().in_atomic_block:
        return IdempotencyKey.objects.create(**fields)
    with transaction.atomic():
        return IdempotencyKey.objects.create(**fields)


class _Refused(Exception):
    def __init__(self, response: Response):
        self.response = response


def _complete(claim: IdempotencyKey, response: Response) -> None:
    IdempotencyKey.objects.filter(pk=claim.pk).update(
        status=IdempotencyKey.Status.DONE,
        response_status=response.status_code,
        response_body=json.loads(json.dumps(response.data, default=str)),
        updated_at=timezone.now(),
    )


def _release(claim: IdempotencyKey) -> None:
    IdempotencyKey.objects.filter(pk=claim.pk).delete()


def idempotent(view_method=None, *, atomic: bool = True):
    """Decorate a state-changing POST. `atomic=False` is for a view that must not run inside a
    transaction (it waits for Kafka): the answer is then stored right after the view returns."""
    if view_method is None:
        return functools.partial(idempotent, atomic=atomic)

    def run(self, request, *args, **kwargs):
        return view_method(self, request, *args, **kwargs)

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.META.get(_META_KEY)
        if key is not None and not KEY_PATTERN.fullmatch(key):
            raise InvalidIdempotencyKey()
        request.idempotency_key = key
        if key is None:
            if not atomic:
                return run(self, request, *args, **kwargs)
            return run_in_transaction(lambda: run(self, request, *args, **kwargs))
        user_id = request.user.pk if request.user.is_authenticated else 0
        claim = _claim(user_id, key, request)
        if isinstance(claim, Response):
            return claim

        def business() -> Response:
            response = run(self, request, *args, **kwargs)
            if response.status_code >= 400:
                raise _Refused(response)
            _complete(claim, response)  # inside the business transaction when atomic
            return response

        try:
            return run_in_transaction(business) if atomic else business()
        except _Refused as refused:
            _release(claim)
            return refused.response
        except BaseException:
            _release(claim)
            raise

    return wrapper


def purge_expired_keys() -> int:
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
