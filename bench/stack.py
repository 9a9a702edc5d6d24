"""What the benchmark starts: the model server, the database's users and conversations, and
Chatsite itself through `python -m chatsite.launcher`, the path `./run` serves with.

Every process is started in its own session, so a Ctrl-C in the terminal reaches the bench
first and the bench stops them in order (the app, then the model server, then Redis).
"""

import contextlib
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
READY_BANNER = "Chatsite is running"


def app_env(*, redis_url: str, sqlite_path: Path, model_url: str, port: int, workers: int) -> dict[str, str]:
    """The environment of a production-like Chatsite, limits off, pointed at the bench's pieces."""
    env = {
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "REDIS_URL": redis_url,
        "SQLITE_PATH": str(sqlite_path),
        "DATABASE_URL": "",  # SQLite, unless the bench names a PostgreSQL (bench/search.py)
        "OPENAI_BASE_URL": model_url,
        "OPENAI_API_KEY": "bench",
        "OPENAI_MODEL": "bench-model",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(48)[:64],
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        # One stream a client: a title request after each would be load the straight
        # run does not have (and that earlier tables did not have either).
        "CHAT_TITLES": "false",
        "CHAT_LIMIT_MESSAGES_PER_MINUTE": "0",
        "CHAT_LIMIT_CONCURRENT_REPLIES": "0",
        "CHAT_LIMIT_DAILY_TOKENS": "0",
        "CHATSITE_WORKERS": str(workers),
        "CHATSITE_LOCAL_MODEL": "off",
    }
    assert len(env["SECRET_KEY"]) == 64
    return env


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_process(
    process: subprocess.Popen[bytes], *, first: int = signal.SIGTERM, grace: float = 10.0
) -> None:
    """Stop a process the bench started, then what is left of its process group (its workers)."""
    if process.poll() is None:
        process.send_signal(first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    # It was started in its own session: its group id is its pid, and only its own
    # children share the group.
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if not _group_alive(process.pid):
            break
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 5
        while _group_alive(process.pid) and time.monotonic() < deadline:
            process.poll()  # reap the leader, or its zombie keeps the group "alive"
            time.sleep(0.1)


class ModelServer:
    """bench.model_server in its own process, so its CPU is measured apart from the app's."""

    def __init__(
        self, *, tokens: int, rate: float, first_token: float, log: Path, faults: float = 0.0
    ) -> None:
        self.args = ["--tokens", str(tokens), "--rate", str(rate), "--first-token", str(first_token)]
        self.args += ["--faults", str(faults)]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 20.0) -> "ModelServer":
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.model_server", *self.args],
                cwd=BASE_DIR,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        assert self.process.stdout is not None
        ready, _w, _x = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().decode() if ready else ""
        if not line.startswith("listening "):
            raise RuntimeError(f"The model server did not start: {self.log.read_text()[-2000:]}")
        self.port = int(line.rsplit(":", 1)[1])
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, int]:
        """Streams open and served, and the faults injected by kind."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/bench/stats", timeout=5) as response:
            return dict(json.loads(response.read()))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no stream is open: the app finished every reply of the last phase."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats()["active"] == 0:
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None


class App:
    """Chatsite served by its launcher; the launcher and its children are the server."""

    def __init__(self, *, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.port = int(env["API_PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> "App":
        with self.log.open("wb") as log:
            # The log is a file, not a pipe: a full pipe would stall the server mid-phase.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chatsite.launcher"],
                cwd=BASE_DIR,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while READY_BANNER not in self.log.read_text(errors="replace"):
            self._check_alive(deadline)
            time.sleep(0.1)
        while not self._answers():
            self._check_alive(deadline)
            time.sleep(0.1)
        return self

    def _check_alive(self, deadline: float) -> None:
        assert self.process is not None
        if self.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"Chatsite did not start:\n{self.log_tail()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/accounts/login/", timeout=2) as reply:
                return bool(reply.status == 200)
        except urllib.error.HTTPError:
            return True  # it answered: it is serving
        except OSError:
            return False

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, first=signal.SIGINT, grace=15.0)  # what Ctrl-C does to ./run
            self.process = None


@dataclass
class Accounts:
    """Who streams: user i has an API token, a signed-in session, and fresh conversations."""

    tokens: list[str] = field(default_factory=list)
    cookies: list[str] = field(default_factory=list)
    # (transport, n) -> conversation ids, one per stream, stream i owned by user i.
    conversations: dict[tuple[str, int], list[str]] = field(default_factory=dict)


def prepare_database(*, users: int, phases: list[tuple[str, int]]) -> Accounts:
    """Migrate and fill the database the app will serve (SQLITE_PATH is already in os.environ)."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction
    from django.test import Client

    from conversations.services import conversation_create
    from conversations.tokens import api_token_create
    from roles.services import role_load_builtins

    call_command("migrate", interactive=False, verbosity=0)
    role_load_builtins()
    accounts = Accounts()
    with transaction.atomic():  # one commit for thousands of rows: seconds instead of minutes
        people = [
            # No password: hashing one costs ~0.3 s each, and streams sign in by session or token.
            get_user_model().objects.create_user(username=f"bench{i}", password=None)
            for i in range(users)
        ]
        for person in people:
            accounts.tokens.append(api_token_create(user=person, name="bench")[1])
            client = Client()
            client.force_login(person)
            accounts.cookies.append(
                f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
            )
        for transport, n in phases:
            accounts.conversations[(transport, n)] = [
                str(conversation_create(owner=people[i], title=f"{transport} {n} #{i}").pk) for i in range(n)
            ]
    return accounts
