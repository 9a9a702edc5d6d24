"""Prepares the suite's environment before Django reads its settings: its own
throwaway real Redis, and the folder of the file-backed test database.

Loaded with `-p tests.environment` (pyproject addopts). A hook *wrapper* runs
before every plugin's own hook, pytest-django's settings set-up included, so
REDIS_URL is in the environment when chatsite.settings is imported.
"""

import os
import shutil
from collections.abc import Generator
from pathlib import Path

import pytest

from chatsite.embedded_postgres import PostgresServer
from chatsite.embedded_redis import EmbeddedRedis

_redis: EmbeddedRedis | None = None
_postgres: PostgresServer | None = None


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None]:
    global _redis
    if not os.environ.get("CHATSITE_TEST_REDIS_URL"):
        _redis = EmbeddedRedis().start()
        os.environ["CHATSITE_TEST_REDIS_URL"] = _redis.url
    # The suite never touches a Redis the developer uses for something else.
    os.environ["REDIS_URL"] = os.environ["CHATSITE_TEST_REDIS_URL"]
    # CHATSITE_TEST_DATABASE=postgres: the suite on a throwaway PostgreSQL (`./run test`
    # runs it on SQLite, then so); pytest-django makes its test database there.
    # Empty rather than absent: a DATABASE_URL in the developer's .env is not read either.
    os.environ["DATABASE_URL"] = ""
    if os.environ.get("CHATSITE_TEST_DATABASE") == "postgres":
        global _postgres
        _postgres = PostgresServer().start()
        os.environ["DATABASE_URL"] = _postgres.url
    var = Path(__file__).resolve().parent.parent / "var"
    var.mkdir(exist_ok=True)
    # One database file per run: two runs at once (two checkouts' worth of work on
    # one machine, or a developer and a hook) must not share it.
    os.environ.setdefault("SQLITE_TEST_PATH", str(var / f"test-{os.getpid()}.sqlite3"))
    # The model's title is one more request after a conversation's first reply: only the
    # tests of titles ask for it (settings.CHAT_TITLES, or CHAT_TITLES in a server's
    # environment), so that every other test's fake provider answers only its replies.
    os.environ["CHAT_TITLES"] = "false"
    # Likewise the summary after a reply written without the earliest messages: only the
    # tests of summaries ask for it (settings.CHAT_SUMMARIES).
    os.environ["CHAT_SUMMARIES"] = "false"
    # Uploaded images of this run (its server processes inherit the environment).
    os.environ["MEDIA_ROOT"] = str(var / f"test-media-{os.getpid()}")
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _redis is not None:
        _redis.stop()
    if _postgres is not None:
        _postgres.stop()
    # Server processes leave SQLite's WAL side files behind the deleted test database.
    for leftover in Path(os.environ["SQLITE_TEST_PATH"]).parent.glob(
        Path(os.environ["SQLITE_TEST_PATH"]).name + "*"
    ):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(os.environ["MEDIA_ROOT"], ignore_errors=True)
