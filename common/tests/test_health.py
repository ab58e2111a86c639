import pytest

pytestmark = pytest.mark.django_db


def test_healthz_needs_no_dependency(api):
    assert api.get("/healthz").json() == {"success": True, "data": {"status": "ok"}}


def test_readyz_is_200_when_everything_answers(api):
    response = api.get("/readyz")
    assert response.status_code == 200, response.json()
    assert set(response.json()["data"]["checks"]) == {"database", "redis", "kafka"}


def test_readyz_names_redis_when_redis_is_stopped(api, throwaway_redis):
    assert api.get("/readyz").status_code == 200
    throwaway_redis.stop()
    response = api.get("/readyz")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    body = response.json()
    assert body["errorCode"] == "NOT_READY"
    assert body["data"]["down"] == ["redis"]
    assert "redis" in body["errorMessage"]
