import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import translation
from django_redis import get_redis_connection

from chatsite.embedded_redis import EmbeddedRedis, free_port
from conversations import hub
from conversations.db import in_write_thread
from conversations.models import Message
from providers.models import Provider, ProviderModel
from roles.services import role_load_builtins
from tests.fake_openai import FakeOpenAI

BASE_DIR = Path(__file__).resolve().parent.parent
ARTIFACTS = BASE_DIR / "test-artifacts"
PASSWORD = "a-long-test-password-1"


@pytest.fixture(autouse=True)
def _clean_redis() -> Iterator[None]:
    """Every test starts with an empty Redis (cache, reply logs, locks)."""
    get_redis_connection("default").flushdb()
    yield
    get_redis_connection("default").flushdb()


@pytest.fixture(autouse=True)
def _default_language() -> None:
    """A request through LocaleMiddleware leaves its language active in the thread; start clean."""
    translation.activate(django_settings.LANGUAGE_CODE)


@pytest.fixture
def fake_openai(settings) -> Iterator[FakeOpenAI]:
    """A real OpenAI-compatible server on loopback, configured as the provider."""
    with FakeOpenAI() as server:
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = "test-key"
        settings.OPENAI_MODEL = "fake-model"
        settings.CHAT_STREAM_INTERVAL = 0.0
        yield server


@pytest.fixture
def second_fake() -> Iterator[FakeOpenAI]:
    """Another real OpenAI-compatible server: a second provider, with models of its own."""
    with FakeOpenAI(model="second-large", listed=["second-large", "second-vision"]) as server:
        yield server


def second_provider_add(server: FakeOpenAI, *, api_key: str = "second-secret-key") -> Provider:
    """The second fake as a provider the admin added, with its two models enabled."""
    provider = Provider(name="second", label="Second Cloud", base_url=server.base_url)
    provider.api_key = api_key
    provider.save()
    ProviderModel.objects.create(provider=provider, name="second-large", label="Second Large", reasoning=True)
    ProviderModel.objects.create(provider=provider, name="second-vision", label="Second Vision", vision=True)
    return provider


@pytest.fixture
def own_redis(settings) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, so it can be killed and restarted."""
    server = EmbeddedRedis().start()
    settings.REDIS_URL = server.url
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": server.url}}
    yield server
    server.stop()


def redis_restart(server: EmbeddedRedis, *, down_for: float = 0.0) -> None:
    """Kill the server as a crash would, and start it again, empty, on the same port."""
    port = server.port
    assert server.process is not None
    server.process.kill()
    server.stop()
    time.sleep(down_for)
    server.port = port
    server.start()


def wait_for_uptime(seconds: int) -> None:
    """Until the test's Redis has been up this long (the reaper trusts leases only then)."""
    deadline = time.monotonic() + 5
    while int(get_redis_connection("default").info("server")["uptime_in_seconds"]) < seconds:
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.fixture
def short_lease(settings):
    """A 1 s lease: the reaper trusts leases once Redis has been up that long (it may have
    just started, when a test runs alone), and a dead process's lease expires soon."""
    settings.CHAT_LEASE_SECONDS = 1
    wait_for_uptime(1)


@pytest.fixture
def no_provider(settings) -> None:
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""


@pytest.fixture
def builtin_roles(db) -> None:
    role_load_builtins()


# The database the suite runs on this time (tests/environment.py).
ON_POSTGRES = os.environ.get("CHATSITE_TEST_DATABASE") == "postgres"
# What only one of them has: SQLite's search indexes and triggers, PostgreSQL's pg_trgm.
sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="SQLite's own (the suite's run on SQLite checks it)")
postgres_only = pytest.mark.skipif(
    not ON_POSTGRES, reason="PostgreSQL's own (the suite's run on it checks it)"
)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's, and on PostgreSQL, before it drops the test database: the sessions
    still open on it end. Each thread keeps its connection (chatsite.database_url), and
    the threads of the suite's event loops and of the database writer outlive their tests;
    PostgreSQL refuses to drop a database with sessions."""
    yield
    if connection.vendor != "postgresql":
        return
    import psycopg

    database = connection.settings_dict
    with django_db_blocker.unblock():
        connection.close()
        with psycopg.connect(
            host=database["HOST"],
            port=database["PORT"],
            user=database["USER"],
            dbname="postgres",
            autocommit=True,
        ) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [database["NAME"]],
            )


def make_user(username: str) -> User:
    user: User = get_user_model().objects.create_user(username=username, password=PASSWORD)
    return user


@pytest.fixture
def alice(db) -> User:
    return make_user("alice")


@pytest.fixture
def bob(db) -> User:
    return make_user("bob")


def session_cookie_for(user: User) -> str:
    client = Client()
    client.force_login(user)
    return (
        f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"
    )


def _busy_timeout(milliseconds: int) -> None:
    connection.ensure_connection()
    connection.connection.execute(f"PRAGMA busy_timeout = {milliseconds}")


@contextmanager
def _sqlite_write_locked() -> Iterator[None]:
    """Another connection holds SQLite's write lock, and the connections that write wait
    for it 50 ms instead of their 20 s: this thread's, and the database writer thread's
    (conversations.db), where async views write."""
    for set_timeout in (_busy_timeout, async_to_sync(in_write_thread(_busy_timeout))):
        set_timeout(50)
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        for set_timeout in (_busy_timeout, async_to_sync(in_write_thread(_busy_timeout))):
            set_timeout(20_000)


@contextmanager
def _postgres_write_locked() -> Iterator[None]:
    """Another session holds the conversations' and messages' tables against writes (reads
    go on), and every session waits for a lock 50 ms at most (the suite's own server is a
    throwaway one: its configuration is the suite's to change)."""
    import psycopg

    database = connection.settings_dict
    with psycopg.connect(
        host=database["HOST"],
        port=database["PORT"],
        user=database["USER"],
        dbname=database["NAME"],
        autocommit=True,
    ) as holder:
        holder.execute("ALTER SYSTEM SET lock_timeout = '50ms'")
        holder.execute("SELECT pg_reload_conf()")
        time.sleep(0.2)  # each session reads it again before its next statement, once signalled
        try:
            with holder.transaction():
                holder.execute(
                    "LOCK TABLE conversations_conversation, conversations_message IN EXCLUSIVE MODE"
                )
                yield
        finally:
            holder.execute("ALTER SYSTEM RESET lock_timeout")
            holder.execute("SELECT pg_reload_conf()")


def database_write_locked() -> AbstractContextManager[None]:
    """While it is held, a write to a conversation or message fails as it does on a busy
    database: after a short wait, with the database's own error."""
    return _sqlite_write_locked() if connection.vendor == "sqlite" else _postgres_write_locked()


async def wait_for_reply(reply_id: int, within: float = 10.0) -> Message:
    """Follow the reply's live log to its end (as a watcher would), then read the saved row."""

    async def drain() -> None:
        async for _event in hub.follow(reply_id=reply_id):
            pass

    await asyncio.wait_for(drain(), within)
    return await Message.objects.aget(pk=reply_id)


aget_user = sync_to_async(make_user)


async def frames_until(communicator: Any, pattern: str, within: float = 5.0) -> list[str]:
    """Receive a socket's frames until one matches `pattern`; return them all."""
    frames: list[str] = []
    while True:
        frames.append(await communicator.receive_from(timeout=within))
        if re.search(pattern, frames[-1]):
            return frames


# --- A real server process for browser tests ---------------------------------


@dataclass
class LiveApp:
    url: str
    process: subprocess.Popen[bytes]


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url + "accounts/login/", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("The server did not answer in time")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def server_database_env() -> dict[str, str]:
    """What points a server process at the test database (made by pytest-django)."""
    database = django_settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return {"SQLITE_PATH": str(database["NAME"])}
    user, host, port, name = database["USER"], database["HOST"], database["PORT"], database["NAME"]
    return {"DATABASE_URL": f"postgres://{user}@{host}:{port}/{name}"}


@pytest.fixture
def app_servers(transactional_db, fake_openai: FakeOpenAI, builtin_roles) -> Iterator[Callable[..., LiveApp]]:
    """Start daphne processes serving chatsite.serving on the test database, Redis and provider."""
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(**extra_env: str) -> LiveApp:
        port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            **server_database_env(),
            "OPENAI_BASE_URL": fake_openai.base_url,
            "OPENAI_API_KEY": "test-key",
            "OPENAI_MODEL": "fake-model",
            "PYTHONUNBUFFERED": "1",
            # Stopped at once unless a test asks for a drain: most replies here never end.
            "CHATSITE_DRAIN_SECONDS": "0",
            **extra_env,
        }
        ARTIFACTS.mkdir(exist_ok=True)
        log = (ARTIFACTS / "daphne.log").open("ab")
        command = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "chatsite.serving:application",
        ]
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append((process, log))
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url, process)
        return LiveApp(url=url, process=process)

    yield start
    for process, log in started:
        _stop(process)
        log.close()


@pytest.fixture
def live_app(app_servers: Callable[..., LiveApp]) -> LiveApp:
    """Daphne serving chatsite.serving in its own process, on the test database and Redis."""
    return app_servers()
