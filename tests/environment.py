"""Prepares the suite's environment before Django reads its settings: its own
throwaway real Redis, and the folder of the file-backed test database.

Loaded with `-p tests.environment` (pyproject addopts). A hook *wrapper* runs
before every plugin's own hook, pytest-django's settings set-up included, so
REDIS_URL is in the environment when chatsite.settings is imported.
"""

import os
from collections.abc import Generator
from pathlib import Path

import pytest

from chatsite.embedded_redis import EmbeddedRedis

_redis: EmbeddedRedis | None = None


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None]:
    global _redis
    if not os.environ.get("CHATSITE_TEST_REDIS_URL"):
        _redis = EmbeddedRedis().start()
        os.environ["CHATSITE_TEST_REDIS_URL"] = _redis.url
    # The suite never touches a Redis the developer uses for something else.
    os.environ["REDIS_URL"] = os.environ["CHATSITE_TEST_REDIS_URL"]
    (Path(__file__).resolve().parent.parent / "var").mkdir(exist_ok=True)
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _redis is not None:
        _redis.stop()
