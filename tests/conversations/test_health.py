"""GET /healthz: the database, a real Redis and a real provider, each really up or down."""

import json

import pytest
from django.test import Client

from chatsite.embedded_redis import free_port
from conversations import health

pytestmark = pytest.mark.django_db(transaction=True)


def probe() -> tuple[int, dict, dict[str, str]]:
    response = Client().get("/healthz")  # signed out, as a load balancer is
    return response.status_code, json.loads(response.content), dict(response.headers)


def test_healthz_is_ok_when_the_database_redis_and_provider_answer(fake_openai):
    status, body, headers = probe()

    assert status == 200
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "redis": True,
        "provider": True,
    }
    assert headers["Cache-Control"] == "no-store"


def test_healthz_shows_no_key_and_no_address(fake_openai):
    response = Client().get("/healthz")

    text = response.content.decode()
    assert "test-key" not in text
    assert fake_openai.base_url not in text
    assert "127.0.0.1" not in text


def test_healthz_is_503_with_retry_after_when_redis_is_down(fake_openai, own_redis, settings):
    own_redis.stop()  # a real Redis, really gone

    status, body, headers = probe()

    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"]  # the kind of failure
    assert body["checks"]["database"]["ok"] is True
    assert headers["Retry-After"] == str(settings.CHAT_RETRY_AFTER_SECONDS)


def test_an_unreachable_provider_is_degraded_not_unavailable(settings):
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    settings.OPENAI_API_KEY = "test-key"

    status, body, _headers = probe()

    assert status == 200  # every process would fail it: a load balancer must keep them
    assert body["status"] == "degraded"
    assert body["checks"]["provider"]["ok"] is False


def test_no_provider_configured_is_reported_as_such(no_provider):
    status, body, _headers = probe()

    assert status == 200
    assert body["checks"]["provider"] == {"ok": False, "milliseconds": 0.0, "error": "not_configured"}


def test_the_providers_answer_is_kept_for_a_while(fake_openai, monkeypatch):
    assert probe()[1]["checks"]["provider"]["ok"] is True
    fake_openai.stop()

    kept = probe()[1]["checks"]["provider"]["ok"]
    monkeypatch.setattr(health, "PROVIDER_CACHE_SECONDS", 0.0)
    asked_again = probe()[1]["checks"]["provider"]["ok"]

    assert kept is True  # not asked again within PROVIDER_CACHE_SECONDS
    assert asked_again is False


def test_healthz_answers_only_get():
    assert Client().post("/healthz").status_code == 405
