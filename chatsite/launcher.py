"""What `./run` does after installing: Redis, database, roles, admin, banner, daphne.

Run as `python -m chatsite.launcher`. Ctrl-C stops daphne, then the embedded Redis.
"""

import os
import sys

from chatsite.embedded_redis import EmbeddedRedis


def _prepare() -> None:
    import django
    from django.core.management import call_command

    django.setup()

    from django.contrib.auth import get_user_model

    from conversations.services import reply_recover_orphans
    from roles.services import role_load_builtins

    call_command("migrate", interactive=False, verbosity=0)
    role_load_builtins()
    recovered = reply_recover_orphans()
    if recovered:
        print(f"  Marked {recovered} reply(ies) left unfinished by a previous run as interrupted.")
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


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    redis: EmbeddedRedis | None = None
    if os.environ.get("REDIS_URL", "").strip():
        redis_label = f"{os.environ['REDIS_URL']} (REDIS_URL)"
    else:
        redis = EmbeddedRedis().start()
        os.environ["REDIS_URL"] = redis.url
        redis_label = redis.version_label
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
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
