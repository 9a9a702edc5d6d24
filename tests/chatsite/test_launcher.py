"""`./run`'s server start-up, run as a real process the way a user runs it."""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

from chatsite.embedded_redis import free_port

BASE_DIR = Path(__file__).resolve().parents[2]


def start_launcher(tmp_path: Path, **extra: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(
        {
            "API_PORT": str(port),
            "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
            "OPENAI_BASE_URL": "",
            "OPENAI_API_KEY": "",
            "CHATSITE_LOCAL_MODEL": "off",  # the local model has its own tests
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "chatsite.launcher"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, port


def wait_until_serving(port: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the launcher exited early"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the app did not start serving")


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_run_serves_with_embedded_redis_and_ctrl_c_stops_everything(tmp_path):
    process, port = start_launcher(
        tmp_path, CHATSITE_ADMIN_USER="boss", CHATSITE_ADMIN_PASSWORD="a-long-admin-password-1"
    )
    try:
        wait_until_serving(port, process)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    assert f"URL:       http://127.0.0.1:{port}/" in output
    assert "Model:     none configured" in output
    assert "Created admin account 'boss'" in output
    match = re.search(r"Redis:     embedded redis-server .* on 127\.0\.0\.1:(\d+)", output)
    assert match, output
    assert not port_is_open(int(match.group(1)))  # Ctrl-C stopped the embedded Redis too
    assert process.returncode == 0


def test_run_loads_the_builtin_roles_once(tmp_path):
    for _ in range(2):
        process, port = start_launcher(tmp_path)
        try:
            wait_until_serving(port, process)
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)

    with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as db:
        slugs = sorted(row[0] for row in db.execute("select slug from roles_role"))
    assert slugs == ["assistant", "programmer", "teacher"]


def run_manage(tmp_path: Path, *args: str) -> str:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env["SQLITE_PATH"] = str(tmp_path / "db.sqlite3")
    result = subprocess.run(
        [sys.executable, "-m", "chatsite.launcher", "manage", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


PRINT_REDIS = "from django.conf import settings; print(settings.REDIS_URL)"


def test_manage_uses_the_running_apps_redis(tmp_path):
    process, port = start_launcher(tmp_path)
    try:
        wait_until_serving(port, process)
        used = run_manage(tmp_path, "shell", "--no-imports", "-c", PRINT_REDIS).strip()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    match = re.search(r"on 127\.0\.0\.1:(\d+)", output)
    assert match
    assert used == f"redis://127.0.0.1:{match.group(1)}/0"


def test_manage_without_a_running_app_brings_its_own_redis_and_stops_it(tmp_path):
    used = run_manage(tmp_path, "shell", "--no-imports", "-c", PRINT_REDIS).strip()

    port = int(re.fullmatch(r"redis://127\.0\.0\.1:(\d+)/0", used).group(1))  # type: ignore[union-attr]
    assert not port_is_open(port)


def test_a_configured_provider_means_no_local_model(monkeypatch):
    from chatsite import launcher

    def must_not_start(progress):
        raise AssertionError("the local model was started although a provider is configured")

    monkeypatch.setattr(launcher, "start_local_model", must_not_start)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    assert launcher._start_local_model() is None
