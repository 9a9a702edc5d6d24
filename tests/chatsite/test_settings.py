"""The settings module as a deployment sees it: `.env`, and `DEBUG=false` served by a real daphne."""

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis

from chatsite.embedded_redis import EmbeddedRedis, free_port, redis_server_binary
from conversations import replylog
from conversations.models import Message
from conversations.services import conversation_create
from conversations.tokens import api_token_create
from tests.conftest import make_user

BASE_DIR = Path(__file__).resolve().parents[2]
SECRET_KEY = "k" * 10 + "-a-production-secret-key-of-more-than-fifty-characters"


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path):
    # settings.py reads the `.env` beside its package: a copy of it in a folder of its own.
    (tmp_path / "chatsite").mkdir()
    shutil.copy(BASE_DIR / "chatsite" / "settings.py", tmp_path / "chatsite" / "settings.py")
    (tmp_path / ".env").write_text("OPENAI_MODEL=from-dotenv\nCHAT_CONTEXT_ROUNDS=7\n")
    env = {k: v for k, v in os.environ.items() if k not in {"OPENAI_MODEL", "CHAT_CONTEXT_ROUNDS"}}
    env["OPENAI_MODEL"] = "from-the-environment"
    script = (
        "import json, runpy, sys; s = runpy.run_path(sys.argv[1]);"
        " print(json.dumps([s['OPENAI_MODEL'], s['CHAT_CONTEXT_ROUNDS']]))"
    )

    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "chatsite" / "settings.py")],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert json.loads(out.splitlines()[-1]) == ["from-the-environment", 7]


# --- DEBUG=false, served by daphne -------------------------------------------------


@pytest.fixture
def production_app(tmp_path: Path) -> Iterator[int]:
    """daphne serving chatsite.asgi with DEBUG=false and a real secret key, behind a proxy."""
    yield from _production_app(tmp_path, PROXY_HEADERS="true")


@pytest.fixture
def production_app_without_proxy(tmp_path: Path) -> Iterator[int]:
    """The same, reached directly: PROXY_HEADERS left at its default."""
    yield from _production_app(tmp_path)


def _production_app(tmp_path: Path, **extra_env: str) -> Iterator[int]:
    redis = EmbeddedRedis().start()
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DEBUG": "false",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "REDIS_URL": redis.url,
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "DATABASE_URL": "",
        "CHATSITE_LOCAL_MODEL": "off",
        **extra_env,
    }
    log = (tmp_path / "daphne.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatsite.asgi:application"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "daphne.log").read_text()
            try:
                get(port, "/accounts/login/")
                break
            except OSError:
                assert time.monotonic() < deadline, "daphne did not answer"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        redis.stop()


def get(port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Host": "127.0.0.1", **(headers or {})})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_plain_http_is_redirected_to_https(production_app: int):
    response = get(production_app, "/accounts/login/?next=/")

    assert response.status == 301
    assert response.getheader("Location") == "https://127.0.0.1/accounts/login/?next=/"


def test_https_answers_carry_hsts_and_secure_cookies(production_app: int):
    # As behind the README's TLS-terminating proxy, which sets X-Forwarded-Proto.
    response = get(production_app, "/accounts/login/", {"X-Forwarded-Proto": "https"})

    assert response.status == 200
    assert response.getheader("Strict-Transport-Security") == "max-age=31536000; includeSubDomains; preload"
    cookies = response.getheader("Set-Cookie") or ""
    assert "csrftoken=" in cookies and "Secure" in cookies


def test_a_load_balancers_plain_http_health_probe_is_answered_not_redirected(
    production_app_without_proxy: int,
):
    connection = http.client.HTTPConnection("127.0.0.1", production_app_without_proxy, timeout=10)
    connection.request("GET", "/healthz", headers={"Host": "127.0.0.1"})
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()

    assert response.status == 200
    assert body["checks"]["database"]["ok"] is True and body["checks"]["redis"]["ok"] is True


def test_without_a_proxy_a_forwarded_proto_header_is_not_believed(production_app_without_proxy: int):
    # No proxy in front: a client claiming HTTPS is still sent to HTTPS.
    response = get(production_app_without_proxy, "/accounts/login/", {"X-Forwarded-Proto": "https"})

    assert response.status == 301
    assert response.getheader("Location") == "https://127.0.0.1/accounts/login/"


# --- Redis with a password ----------------------------------------------------------


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A real redis-server that refuses every client without its password."""
    password, port = "a-redis-password-1", free_port()
    process = subprocess.Popen(
        [
            *(redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port, password=password).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        yield password, port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_the_app_works_with_a_redis_that_needs_a_password(redis_with_password, app_servers, fake_openai):
    password, port = redis_with_password
    with pytest.raises(redis.AuthenticationError):  # it really is protected
        redis.Redis(port=port).get("anything")
    app = app_servers(REDIS_URL=f"redis://:{password}@127.0.0.1:{port}/0")
    alice = make_user("alice")
    _token, raw = api_token_create(user=alice, name="test")
    conversation = conversation_create(owner=alice)
    fake_openai.queue_text("Through the protected Redis")

    connection = http.client.HTTPConnection("127.0.0.1", urlparse(app.url).port, timeout=15)
    connection.request(
        "POST",
        "/chat/stream",
        body=json.dumps({"session_id": str(conversation.pk), "message": "hi"}),
        headers={"Authorization": f"Bearer {raw}", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    lines = response.read().decode().splitlines()
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    connection.close()

    assert response.status == 200
    assert "".join(e["content"] for e in events if e["type"] == "chunk") == "Through the protected Redis"
    assert events[-1]["type"] == "end" and events[-1]["status"] == "complete"
    reply = Message.objects.get(conversation=conversation, author="assistant")
    # The reply's log was written to this Redis, through the password.
    assert redis.Redis(port=port, password=password).exists(replylog.log_key(reply.pk))
