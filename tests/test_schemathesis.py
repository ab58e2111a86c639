"""Bad input, generated from our own OpenAPI document: every operation of `/api/schema/`, called
in-process through the WSGI application with a real user's Bearer token, must never answer 5xx and
must answer only what the schema documents (status code, content type, body schema).

Two runs over every operation: positive cases (valid by the schema; the caller's own `userId`
filled in so requests reach the business logic) and negative cases (schema-violating input, which
must be refused with a 4xx, never accepted and never a 500). Bounded: MAX_EXAMPLES per operation
and mode. The run's size is printed (`-s` shows it) and asserted to cover every operation.

The database is transactional (`transaction=True`): the queue endpoint talks to Kafka and refuses
to run inside a transaction, and on-commit work (SSE, caches) runs as in production.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import bearer
from orders.services import LineRequest, checkout_initiate
from orders.tests.helpers import fund, give_coupon, make_product
from payments.services import payment_process
from shop.services.cart import cart_item_set
from shop.tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MAX_EXAMPLES = 30
SCHEMA = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
CHECKS = {
    GenerationMode.POSITIVE: [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ],
    # Not `negative_data_rejection`: it counts unknown query parameters (ignored, as HTTP APIs do) and
    # a dropped Authorization header (we always send one) as input that should have been refused.
    GenerationMode.NEGATIVE: [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ],
}


@pytest.fixture
def shopper(settings):
    """A funded user with something of everything, so generated ids sometimes hit real rows."""
    settings.KAFKA_TOPIC_PREFIX = f"test_schemathesis_{uuid.uuid4().hex[:8]}"  # queued checkouts stay ours
    user = UserFactory()
    fund(user, 5_000_000)
    products = [make_product(stock=1_000, price=1_000 * i, is_flash_sale=i == 1) for i in range(1, 4)]
    give_coupon(user)
    paid = checkout_initiate(user_id=user.pk, direct_items=[LineRequest(products[0].pk, 1)])
    payment_process(user_id=user.pk, order_id=paid.pk, amount=paid.final_amount)
    checkout_initiate(user_id=user.pk, direct_items=[LineRequest(products[1].pk, 2)])
    cart_item_set(user_id=user.pk, product_id=products[2].pk, quantity=1)
    return user


def own_user_ids(operation, user_id: int) -> dict:
    """Fix the caller's own id where the operation takes one, so positive cases pass the 403 rule."""
    fixed: dict[str, dict] = {}
    for parameter in operation.iter_parameters():
        if parameter.name == "user_id" and parameter.location == "path":
            fixed.setdefault("path_parameters", {})["user_id"] = user_id
        elif parameter.name == "userId" and parameter.location == "query":
            fixed.setdefault("query", {})["userId"] = user_id
    return fixed


def run_operation(operation, mode: GenerationMode, headers: dict, fixed: dict, on_case: Callable[[int], None]):
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases on every run: CI failures reproduce locally
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call(headers=headers)
        on_case(response.status_code)
        case.validate_response(response, checks=CHECKS[mode], headers=headers)

    check()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_every_operation_conforms_and_never_answers_5xx(shopper, mode):
    headers = {"Authorization": bearer(shopper)}
    cases: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: dict[str, str] = {}
    no_invalid_input: set[str] = set()  # negative mode: an operation without inputs has no invalid input
    durations: dict[str, float] = {}
    started = time.monotonic()
    for operation in OPERATIONS:
        operation_started = time.monotonic()
        fixed = own_user_ids(operation, shopper.pk) if mode == GenerationMode.POSITIVE else {}

        def count(status: int, label: str = operation.label) -> None:
            cases[label] += 1
            statuses[status] += 1

        try:
            run_operation(operation, mode, headers, fixed, count)
        except Unsatisfiable:
            if mode == GenerationMode.POSITIVE or operation.label in cases:
                raise
            no_invalid_input.add(operation.label)
        except (Exception, BaseExceptionGroup) as exc:  # every operation runs; failures are reported together
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:3000]
        durations[operation.label] = time.monotonic() - operation_started
    seconds = time.monotonic() - started
    print(
        f"\nschemathesis {mode.value}: {len(OPERATIONS)} operations, {sum(cases.values())} cases "
        f"in {seconds:.1f} s; statuses {dict(sorted(statuses.items()))}"
        + (f"; no invalid input possible for {sorted(no_invalid_input)}" if no_invalid_input else "")
        + "; slowest: "
        + ", ".join(f"{label} {s:.1f} s" for label, s in sorted(durations.items(), key=lambda d: -d[1])[:3])
    )
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
    assert len(OPERATIONS) >= 34 and set(cases) | no_invalid_input == {op.label for op in OPERATIONS}
    assert len(no_invalid_input) <= 1  # GET /coupons
    assert not [s for s in statuses if s >= 500]


# --- bodies no schema describes: malformed, deeply nested, too large -------------------------------

HOSTILE_BODIES = {
    "malformed": (b'{"productId": 1,', 400, "MALFORMED_JSON"),
    "not-utf8": (b'{"a": "\xff"}', 400, "MALFORMED_JSON"),
    "nested-1000": (b'{"a":' * 1_000 + b"1" + b"}" * 1_000, 400, "MALFORMED_JSON"),
    "nested-100000": (b"[" * 100_000 + b"]" * 100_000, 400, "MALFORMED_JSON"),
    "2-mb": (b'{"items": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413, "PAYLOAD_TOO_LARGE"),
}
WRITES = [op for op in OPERATIONS if op.method.upper() in ("POST", "PUT", "PATCH")]


def path_parameters(operation, user_id: int) -> dict:
    return {p.name: user_id if p.name == "user_id" else 1 for p in operation.iter_parameters() if p.location == "path"}


@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "with-key"])
def test_every_write_refuses_hostile_bodies_with_a_4xx_envelope(shopper, with_key):
    """Every POST/PUT of the schema, sent each hostile body with and without an Idempotency-Key: an
    operation that takes a body answers exactly 400 MALFORMED_JSON or 413 PAYLOAD_TOO_LARGE (the
    parser runs before any business logic, the caller's own ids are used) and leaves no claim;
    one that takes no body never reads it. Never a 5xx; every answer conforms to the schema."""
    from common.models import IdempotencyKey

    assert len(WRITES) >= 14
    headers = {"Authorization": bearer(shopper)}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    seen: Counter[tuple[int, str]] = Counter()
    for operation in WRITES:
        takes_body = operation.definition.raw.get("requestBody") is not None
        for name, (body, status, code) in HOSTILE_BODIES.items():
            sent = dict(headers)
            if with_key:
                sent["Idempotency-Key"] = f"hostile-{name}-{operation.method}-{operation.path}"[:255]
            case = operation.Case(
                path_parameters=path_parameters(operation, shopper.pk), body=body, media_type="application/json"
            )
            response = case.call(headers=sent)
            label = f"{operation.label} {name} {'with' if with_key else 'without'} key"
            assert response.status_code < 500, f"{label}: {response.status_code} {response.content[:300]!r}"
            case.validate_response(response, checks=checks, headers=sent)
            answer = response.json()
            if takes_body:
                assert (response.status_code, answer.get("errorCode")) == (status, code), f"{label}: {answer}"
                assert answer["success"] is False and answer["errorMessage"], label
            seen[(response.status_code, answer.get("errorCode", "-"))] += 1
    assert not IdempotencyKey.objects.filter(key__startswith="hostile-").exists()
    print(f"\nhostile bodies ({'with' if with_key else 'without'} key): {dict(seen)}")
