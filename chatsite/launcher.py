"""What `./run` does after installing: Redis, database, roles, admin, banner, daphne.

`python -m chatsite.launcher` serves; Ctrl-C stops daphne, then the embedded Redis.
`python -m chatsite.launcher manage ARGS` runs a manage.py command against the Redis
of the app that is running (or a throwaway one when none is), so `manage.py chat`
and the web page share live replies.
"""

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from dotenv import load_dotenv

from chatsite.embedded_redis import EmbeddedRedis
from chatsite.local_model_launch import LocalModelLaunch
from chatsite.workers import WorkerPool, listening_sockets, raise_open_files_limit, worker_count

BASE_DIR = Path(__file__).resolve().parent.parent


def _beside_database(suffix: str) -> Path:
    """A file of this app instance's: beside its database (SQLITE_PATH, default as in
    settings), because the database and what the launcher started are one instance."""
    database = Path(os.environ.get("SQLITE_PATH", "").strip() or BASE_DIR / "db.sqlite3")
    return database.with_name(database.name + suffix)


def runtime_file() -> Path:
    """Where a serving launcher leaves what it started (its Redis, its local model), so
    `./run manage` commands use the same."""
    return _beside_database(".runtime.json")


def _runtime_write(values: dict[str, str]) -> None:
    path = runtime_file()
    path.touch(mode=0o600)  # it holds the local model's key
    path.write_text(json.dumps(values))


def _runtime_read() -> dict[str, str]:
    try:
        values = json.loads(runtime_file().read_text())
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


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


def _banner(redis_label: str, workers: int) -> str:
    from django.conf import settings

    from conversations.llm import provider_get
    from providers.local_model_state import local_model_state

    provider = provider_get()
    local_model = local_model_state()
    if local_model is not None and local_model.failed:
        model = "none: the built-in local model could not be prepared (see above)"
    elif settings.CHATSITE_LOCAL_MODEL_IN_USE and provider:
        model = f"{settings.OPENAI_MODEL} at {provider.base_url}: {LOCAL_MODEL_NOTE}"
        if local_model is not None:
            model += "\n             Being prepared meanwhile: chat works as soon as it is ready."
    elif provider:
        model = f"{settings.OPENAI_MODEL} at {provider.base_url}"
    else:
        model = "none configured - set OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODEL in .env"
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
            f"  Workers:   {workers} serving process(es) (CHATSITE_WORKERS)",
            "  Stop with Ctrl-C.",
            "",
        ]
    )


def manage(args: list[str]) -> int:
    from django.core.management import execute_from_command_line

    running = _runtime_read()
    if not _provider_configured() and running.get("OPENAI_BASE_URL"):
        # The running app's local model: `chat` and `llm_check` talk to it like any provider.
        os.environ.update({key: value for key, value in running.items() if key != "REDIS_URL"})
    redis: EmbeddedRedis | None = None
    if not _redis_configured():
        shared = running.get("REDIS_URL", "")
        if EmbeddedRedis.is_ours(shared):
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


LOCAL_MODEL_NOTE = (
    "a tiny local model, for trying Chatsite out (weak answers). For a real assistant set "
    "OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (Ollama, vLLM, LM Studio...) in .env"
)


def _provider_configured() -> bool:
    return bool(os.environ.get("OPENAI_BASE_URL", "").strip() or os.environ.get("OPENAI_API_KEY", "").strip())


def _local_model_wanted() -> bool:
    """With no provider configured, the built-in tiny model, through the same SDK path."""
    if _provider_configured():
        return False
    return os.environ.get("CHATSITE_LOCAL_MODEL", "on").strip().lower() not in {"off", "false", "0", "no"}


def _local_model_launch() -> LocalModelLaunch | None:
    """The local model, being prepared in the background, its address already in the
    environment that the serving processes inherit."""
    if not _local_model_wanted():
        return None
    print("No OPENAI_BASE_URL or OPENAI_API_KEY set: preparing the built-in local model ...", flush=True)
    launch = LocalModelLaunch(_beside_database(".local-model.json"))
    os.environ.update(launch.env)
    return launch.begin()


def _embedded_redis() -> EmbeddedRedis:
    """The embedded Redis of an earlier `./run` that was killed outright (its runtime file
    is still there, and so is its Redis, with the reply logs that the reaper needs), else
    a new one. Never a server that is not an embedded Chatsite Redis."""
    adopted = EmbeddedRedis.adopt(_runtime_read().get("REDIS_URL", ""))
    if adopted is not None:
        print(f"  Adopted the embedded Redis of an earlier run on 127.0.0.1:{adopted.port}.", flush=True)
        return adopted
    return EmbeddedRedis().start()


def _keep_alive(redis: EmbeddedRedis) -> None:
    """The embedded Redis died (killed, out of memory): start it again on its port. Replies
    being written republish their text; sessions come from the database meanwhile."""
    if not redis.alive():
        print("  The embedded Redis stopped; starting it again.", flush=True)
        try:
            redis.restart()
        except RuntimeError as exc:
            print(f"  Could not restart the embedded Redis: {exc}", flush=True)


def _redis_configured() -> bool:
    """A Redis of the operator's (REDIS_URL, or the sentinels' master): none embedded."""
    return bool(os.environ.get("REDIS_URL", "").strip() or os.environ.get("REDIS_SENTINELS", "").strip())


def _without_password(url: str) -> str:
    """The URL as printed: a password in it (redis://:secret@host) shown as ***."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def serve() -> int:
    raise_open_files_limit()
    redis: EmbeddedRedis | None = None
    if os.environ.get("REDIS_SENTINELS", "").strip():
        redis_label = (
            f"the master that the sentinels {os.environ['REDIS_SENTINELS'].strip()} name (REDIS_SENTINELS)"
        )
    elif os.environ.get("REDIS_URL", "").strip():
        redis_label = f"{_without_password(os.environ['REDIS_URL'])} (REDIS_URL)"
    else:
        redis = _embedded_redis()
        os.environ["REDIS_URL"] = redis.url
        redis_label = redis.version_label
    # After Redis has bound its port: the model's is chosen now and bound minutes later.
    local_model = _local_model_launch()
    started = {"REDIS_URL": redis.url} if redis else {}
    if local_model is not None:
        started.update(local_model.env)
    if started:
        _runtime_write(started)
    metrics_dir, own_metrics_dir = _metrics_dir()
    status = 0
    try:
        _prepare()
        from django.conf import settings

        count = worker_count(os.environ.get("CHATSITE_WORKERS", ""))
        socks = listening_sockets(settings.API_HOST, settings.API_PORT, count)
        print(_banner(redis_label, count), flush=True)
        # Behind a reverse proxy, the client's address comes from X-Forwarded-For.
        proxy = ["--proxy-headers"] if settings.PROXY_HEADERS else []
        supervise = (lambda: _keep_alive(redis)) if redis is not None else (lambda: None)
        status = WorkerPool(socks=socks, daphne_args=proxy, on_tick=supervise, on_exit=_metrics_forget).run()
    finally:
        if own_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        runtime_file().unlink(missing_ok=True)
        if redis is not None:
            redis.stop()
        if local_model is not None:
            local_model.stop()
    return status


def _metrics_dir() -> tuple[str, bool]:
    """The folder where every worker writes its /metrics figures (PROMETHEUS_MULTIPROC_DIR),
    so that a scrape sums them: the operator's, or a new one of this run's own."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # a previous run's: it would add to this one's
            stale.unlink()
        return given, False
    made = tempfile.mkdtemp(prefix="chatsite-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made, True


def _metrics_forget(pid: int) -> None:
    """A worker exited: its gauges (replies in flight, watchers) no longer count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def environment_load() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    # .env first: which provider and which Redis to use is decided before Django starts.
    load_dotenv(BASE_DIR / ".env", override=False)


def main() -> int:
    environment_load()
    if sys.argv[1:2] == ["manage"]:
        return manage(sys.argv[2:])
    return serve()


if __name__ == "__main__":
    sys.exit(main())
