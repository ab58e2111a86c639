"""The conventions every endpoint shares: envelope, errors, authentication, userId rule."""

import pytest

from shop.models import User

pytestmark = pytest.mark.django_db


def test_unknown_route_is_404_envelope(api):
    response = api.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "errorCode": "NOT_FOUND",
        "errorMessage": "No route for /api/v1/no-such-thing.",
        "data": None,
    }


def test_malformed_json_is_400_envelope(api):
    response = api.generic("POST", "/api/v1/users", "{not json", content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["errorCode"] == "MALFORMED_JSON"
    assert User.objects.count() == 0


def test_unsupported_media_type_is_415(api):
    response = api.generic("POST", "/api/v1/users", "username=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["errorCode"] == "UNSUPPORTED_MEDIA_TYPE"


def test_wrong_method_is_405(auth_api):
    response = auth_api.delete("/api/v1/users/me")
    assert response.status_code == 405
    assert response.json()["errorCode"] == "METHOD_NOT_ALLOWED"


def test_no_token_is_401(api):
    response = api.get("/api/v1/users/me")
    assert response.status_code == 401
    assert response.json()["errorCode"] == "UNAUTHORIZED"


def test_bad_token_is_401(api):
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    response = api.get("/api/v1/users/me")
    assert response.status_code == 401
    assert response.json()["success"] is False


def test_validation_error_names_the_field(api):
    response = api.post(
        "/api/v1/users", {"username": "ok", "email": "nope", "password": "long-enough-pw"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == "INVALID_INPUT"
    assert "email" in body["data"]["fields"]


def test_signup_then_token_then_me(api):
    created = api.post(
        "/api/v1/users",
        {"username": "kim", "email": "kim@example.com", "password": "s3cret-passphrase", "name": "Kim"},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["data"]["username"] == "kim"
    token = api.post("/api/v1/auth/token", {"username": "kim", "password": "s3cret-passphrase"}, format="json")
    assert token.status_code == 200
    access = token.json()["data"]["access"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    me = api.get("/api/v1/users/me").json()
    assert me == {
        "success": True,
        "data": {"id": created.json()["data"]["id"], "username": "kim", "email": "kim@example.com", "name": "Kim"},
    }


def test_wrong_password_is_401(api, user):
    response = api.post("/api/v1/auth/token", {"username": user.username, "password": "wrong"}, format="json")
    assert response.status_code == 401


def test_duplicate_username_is_409_and_changes_nothing(api, user):
    response = api.post(
        "/api/v1/users",
        {"username": user.username, "email": "x@example.com", "password": "s3cret-passphrase"},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["errorCode"] == "USERNAME_TAKEN"
    assert User.objects.count() == 1


def test_acting_user_id_is_the_callers_own_and_refuses_anyone_elses(rf, user, other_user):
    from common.auth import acting_user_id
    from common.errors import Forbidden, ValidationFailed

    request = rf.get("/")
    request.user = user
    assert acting_user_id(request, None) == user.pk
    assert acting_user_id(request, str(user.pk)) == user.pk
    with pytest.raises(Forbidden):
        acting_user_id(request, other_user.pk)
    for bad in ("abc", "-1", "0", "1.5", True, " 1"):
        with pytest.raises(ValidationFailed):
            acting_user_id(request, bad)


def test_openapi_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/users" in schema.json()["paths"]
    assert api.get("/api/docs/").status_code == 200


def test_metrics_endpoint_exposes_the_http_request_counters(api):
    response = api.get("/metrics")
    assert response.status_code == 200
    assert b"django_http_responses_total_by_status_view_method_total" in response.content


def test_admin_requires_staff(client, user):
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
