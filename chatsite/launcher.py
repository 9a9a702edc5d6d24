"""What `./run` does after installing: Redis, database, roles, admin, banner, daphne.

`python -m chatsite.launcher` serves; Ctrl-C stops daphne, then the embedded Redis.
`python -m chatsite.launcher manage ARGS` runs a manage.py command against the Redis
of the app that is running (or a throwaway one when none is), so `manage.py chat`
and the web page share live replies.
"""

import os
import sys
from pathlib import Path

import redis as redis_client

from chatsite.embedded_redis import EmbeddedRedis

BASE_DIR = Path(__file__).resolve().parent.parent


def redis_url_file() -> Path:
    """Where a serving launcher leaves the address of the Redis it started: beside the
    database (SQLITE_PATH, default as in settings), because that pair is one app instance."""
    database = Path(os.environ.get("SQLITE_PATH", "").strip() or BASE_DIR / "db.sqlite3")
    return database.with_name(database.name + ".redis-url")


def _prepare() -> None:
    import django
    from django.core.management import call_command

    django.setup()

    from django.contrib.auth import get_user_model

    from roles.services import role_load_builtins

    call_command("migrate", interactive=False, verbosity=0)
    role_load_builtins()
    username = os.environ.get("CHATSITE_ADMIN_USER", "").strip()
    password = os.environ.get("CHATSITE_ADMIN_PASSWORD", "")
    if username and password:
        users = get_user_model().objects
        if not users.filter(username=username).exists():
            users.create_superuser(username=username, password=password)
            print(f"  Created admin account {username!r}.")


def _banner(redis_label: str) -> str:
    from django.conf import settings

    from conversations.llm import provider_get

    provider = provider_get()
    model = (
        f"{provider.model} at {provider.base_url}"
        if provider
        else "none configured - set OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODEL in .env"
    )
    url = f"http://{settings.API_HOST}:{settings.API_PORT}/"
    return "\n".join(
        [
            "",
            "  Chatsite is running",
            f"  URL:       {url}",
            f"  Database:  {settings.DATABASES['default']['NAME']}",
            f"  Redis:     {redis_label}",
            f"  Model:     {model}",
            f"  Sign-up:   {'open' if settings.CHATSITE_SIGNUP_ENABLED else 'closed'}",
            "  Stop with Ctrl-C.",
            "",
        ]
    )


def _running_app_redis() -> str | None:
    try:
        url = redis_url_file().read_text().strip()
        connection = redis_client.Redis.from_url(url, socket_connect_timeout=1)
        try:
            connection.ping()
        finally:
            connection.close()
        return url
    except (OSError, redis_client.RedisError):
        return None


def manage(args: list[str]) -> int:
    from django.core.management import execute_from_command_line

    redis: EmbeddedRedis | None = None
    if not os.environ.get("REDIS_URL", "").strip():
        shared = _running_app_redis()
        if shared:
            os.environ["REDIS_URL"] = shared
        else:
            redis = EmbeddedRedis().start()
            os.environ["REDIS_URL"] = redis.url
    try:
        execute_from_command_line(["manage.py", *args])
    finally:
        if redis is not None:
            redis.stop()
    return 0


def serve() -> int:
    redis: EmbeddedRedis | None = None
    if os.environ.get("REDIS_URL", "").strip():
        redis_label = f"{os.environ['REDIS_URL']} (REDIS_URL)"
    else:
        redis = EmbeddedRedis().start()
        os.environ["REDIS_URL"] = redis.url
        redis_label = redis.version_label
        redis_url_file().write_text(redis.url)
    try:
        _prepare()
        from django.conf import settings

        print(_banner(redis_label), flush=True)
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(
            ["-b", settings.API_HOST, "-p", str(settings.API_PORT), "chatsite.asgi:application"]
        )
    finally:
        if redis is not None:
            redis_url_file().unlink(missing_ok=True)
            redis.stop()
    return 0


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    if sys.argv[1:2] == ["manage"]:
        return manage(sys.argv[2:])
    return serve()


if __name__ == "__main__":
    sys.exit(main())
