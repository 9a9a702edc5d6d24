"""`./run`'s server start-up, run as a real process the way a user runs it."""

import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from chatsite import launcher
from chatsite.embedded_redis import free_port
from tests.fake_openai import FakeOpenAI, Reply

BASE_DIR = Path(__file__).resolve().parents[2]


def start_launcher(
    tmp_path: Path, *, own_group: bool = False, port: int | None = None, **extra: str
) -> tuple[subprocess.Popen[str], int]:
    port = port or free_port()
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(
        {
            "API_PORT": str(port),
            "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
            "DATABASE_URL": "",  # its own SQLite file, in the suite's run on PostgreSQL too
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
        start_new_session=own_group,  # so a test can kill the launcher and its workers at once
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


# `./run manage ARGS` runs the first; Django's habit, from the venv, is the second.
MANAGE_ENTRIES = {"run-manage": ["-m", "chatsite.launcher", "manage"], "manage.py": ["manage.py"]}


def run_manage(tmp_path: Path, *args: str, entry: str = "run-manage", **extra_env: str) -> str:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env["SQLITE_PATH"] = str(tmp_path / "db.sqlite3")
    env["DATABASE_URL"] = ""
    env.update(extra_env)
    result = subprocess.run(
        [sys.executable, *MANAGE_ENTRIES[entry], *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


PRINT_REDIS = "from django.conf import settings; print(settings.REDIS_URL)"


@pytest.mark.parametrize("entry", MANAGE_ENTRIES)
def test_manage_uses_the_running_apps_redis(tmp_path, entry):
    process, port = start_launcher(tmp_path)
    try:
        wait_until_serving(port, process)
        used = run_manage(tmp_path, "shell", "--no-imports", "-c", PRINT_REDIS, entry=entry).strip()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    match = re.search(r"on 127\.0\.0\.1:(\d+)", output)
    assert match
    assert used == f"redis://127.0.0.1:{match.group(1)}/0"


@pytest.mark.parametrize("entry", MANAGE_ENTRIES)
def test_manage_without_a_running_app_brings_its_own_redis_and_stops_it(tmp_path, entry):
    used = run_manage(tmp_path, "shell", "--no-imports", "-c", PRINT_REDIS, entry=entry).strip()

    port = int(re.fullmatch(r"redis://127\.0\.0\.1:(\d+)/0", used).group(1))  # type: ignore[union-attr]
    assert not port_is_open(port)


def test_manage_with_sentinels_starts_no_redis_of_its_own(tmp_path):
    used = run_manage(tmp_path, "shell", "--no-imports", "-c", PRINT_REDIS, REDIS_SENTINELS="127.0.0.1:26379")

    assert used.strip() == "redis://127.0.0.1:6379/0"  # the default, whose host is not used


LOCAL_MODEL_ENV = ("OPENAI_MODEL", "CHATSITE_LOCAL_MODEL_IN_USE", "CHATSITE_LOCAL_MODEL_STATE_FILE")


@pytest.fixture
def no_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No provider configured, and whatever the launcher sets in os.environ undone after."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "CHATSITE_LOCAL_MODEL", *LOCAL_MODEL_ENV):
        monkeypatch.setenv(name, "")  # recorded, so undone even when it was not set
        monkeypatch.delenv(name)
    monkeypatch.setenv("SQLITE_PATH", str(tmp_path / "db.sqlite3"))
    monkeypatch.setenv("DATABASE_URL", "")


@pytest.mark.parametrize(
    "provider",
    [{"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}, {"OPENAI_API_KEY": "sk-just-a-key"}],
    ids=["base-url-alone", "api-key-alone"],
)
def test_a_configured_provider_means_no_local_model(monkeypatch, no_provider, provider):
    from chatsite import launcher, local_model_launch

    def must_not_start(progress, **address):
        raise AssertionError("the local model was started although a provider is configured")

    monkeypatch.setattr(local_model_launch, "start_local_model", must_not_start)
    for name, value in provider.items():
        monkeypatch.setenv(name, value)

    assert launcher._local_model_launch() is None
    assert not any(name in os.environ for name in LOCAL_MODEL_ENV)


def test_when_the_local_model_cannot_be_built_the_launcher_says_so_and_goes_on(
    monkeypatch, no_provider, tmp_path, capsys, settings
):
    from chatsite import launcher
    from providers.local_model_state import local_model_state

    monkeypatch.setenv("CHATSITE_LOCAL_MODEL_CACHE", str(tmp_path / "not-built"))  # nothing cached
    monkeypatch.setenv("PATH", str(tmp_path))  # no cmake, make or compiler: the real build is impossible

    launch = launcher._local_model_launch()
    assert launch is not None
    try:
        assert launch.wait(timeout=30)
        settings.CHATSITE_LOCAL_MODEL_STATE_FILE = os.environ["CHATSITE_LOCAL_MODEL_STATE_FILE"]
        state = local_model_state()
    finally:
        launch.stop()

    said = capsys.readouterr().out
    assert "No local model is available" in said and "needs cmake" in said
    assert "set OPENAI_API_KEY or OPENAI_BASE_URL in .env" in said
    # The page and every send are told: nothing is sent to a model that is not there.
    assert state is not None and state.failed and "needs cmake" in state.reason
    assert not launch.state_file.exists()  # stopping the launcher removes it


def test_run_serves_on_several_worker_processes_sharing_one_port(tmp_path):
    process, port = start_launcher(tmp_path, CHATSITE_WORKERS="2")
    try:
        wait_until_serving(port, process)
        daphnes = daphne_children(process.pid)
        statuses = [
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5).status
            for _ in range(10)
        ]
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    assert "Workers:   2 serving process(es)" in output
    assert len(daphnes) == 2
    assert statuses == [200] * 10
    assert not any(Path(f"/proc/{pid}").exists() for pid in daphnes)  # stopped with the launcher


def test_a_worker_that_dies_is_replaced(tmp_path):
    process, port = start_launcher(tmp_path, CHATSITE_WORKERS="1")
    try:
        wait_until_serving(port, process)
        [worker] = daphne_children(process.pid)
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        replaced: list[int] = []
        while time.monotonic() < deadline and not replaced:
            time.sleep(0.2)
            replaced = [pid for pid in children_of(process.pid) if pid != worker]
        wait_until_serving(port, process)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    assert replaced
    assert "A serving process exited" in output


def children_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def daphne_children(pid: int) -> list[int]:
    return [child for child in children_of(pid) if b"daphne" in cmdline(child)]


def api(port: int, method: str, path: str, token: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def open_stream(port: int, token: str, session: str) -> Any:
    """GET /chat/stream with the message "go": the SSE response, to read."""
    return urllib.request.urlopen(
        urllib.request.Request(
            f"http://127.0.0.1:{port}/chat/stream?session_id={session}&message=go",
            headers={"Authorization": f"Bearer {token}"},
        ),
        timeout=10,
    )


def test_after_the_app_is_killed_outright_the_next_start_keeps_what_users_were_sent(tmp_path):
    """SIGKILL of the launcher and its workers at once: the embedded Redis (in a session of
    its own) survives with the reply logs, the next ./run adopts it, and the reaper saves
    each interrupted reply with the text its watchers had been sent."""
    env: dict[str, Any] = {
        "CHAT_LEASE_SECONDS": "2",
        "CHATSITE_WORKERS": "1",
        "CHATSITE_ADMIN_USER": "boss",
        "CHATSITE_ADMIN_PASSWORD": "a-long-admin-password-1",
    }
    with FakeOpenAI() as provider:
        provider.queue_reply(Reply(tokens=[f"w{n} " for n in range(300)], delay=0.02))
        env.update(OPENAI_BASE_URL=provider.base_url, OPENAI_API_KEY="k", OPENAI_MODEL="fake-model")
        process, port = start_launcher(tmp_path, own_group=True, **env)
        wait_until_serving(port, process)
        token = run_manage(tmp_path, "api_token", "create", "--user", "boss").strip().split()[-1]
        session = api(port, "POST", "/chat/start", token, {})["session_id"]
        stream = open_stream(port, token, session)
        shown = ""
        while len(shown.split()) < 20:
            line = stream.readline().decode()
            if line.startswith("data: "):
                shown += json.loads(line[6:])["content"]
        time.sleep(1.0)  # what the watcher had been sent a second before the kill

        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)
        stream.close()
        redis_url = json.loads(runtime_file(tmp_path).read_text())["REDIS_URL"]
        redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        assert port_is_open(redis_port)  # the embedded Redis lived on, with the logs

        time.sleep(2.5)  # the dead workers' leases expire
        again, port = start_launcher(tmp_path, port=free_port(), **env)
        try:
            wait_until_serving(port, again)
            deadline = time.monotonic() + 30
            reply: dict = {}
            while time.monotonic() < deadline and reply.get("status") != "interrupted":
                time.sleep(0.3)
                reply = api(port, "GET", f"/chat/history?session_id={session}", token)["messages"][-1]
        finally:
            again.send_signal(signal.SIGINT)
            output, _ = again.communicate(timeout=30)

    assert "Adopted the embedded Redis" in output
    assert reply["status"] == "interrupted"
    assert reply["content"].startswith(shown)
    assert not port_is_open(redis_port)  # stopped with the run that adopted it


def runtime_file(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite3.runtime.json"


def started_again(launcher_pid: int, killed_pid: int) -> bool:
    return any(pid != killed_pid and b"redis-server" in cmdline(pid) for pid in children_of(launcher_pid))


def test_the_embedded_redis_is_started_again_when_it_dies(tmp_path):
    process, port = start_launcher(tmp_path, CHATSITE_WORKERS="1")
    try:
        wait_until_serving(port, process)
        redis_url = json.loads(runtime_file(tmp_path).read_text())["REDIS_URL"]
        redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        [redis_pid] = [pid for pid in children_of(process.pid) if b"redis-server" in cmdline(pid)]
        os.kill(redis_pid, signal.SIGKILL)
        # Back means another redis-server, answering on the same port: the killed one may
        # still accept a connection for a moment after the signal. A deadline, not a bound
        # on how fast: a loaded machine may take a while.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            started_again(process.pid, redis_pid) and port_is_open(redis_port)
        ):
            time.sleep(0.1)
        back = started_again(process.pid, redis_pid) and port_is_open(redis_port)
        wait_until_serving(port, process)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    assert back, output
    assert "The embedded Redis stopped; starting it again." in output
    assert not port_is_open(redis_port)


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def sign_in(port: int, client_ip: str, username: str, password: str = "wrong-password") -> int:
    """One browser's sign-in attempt (its own CSRF cookie), sent as if through a proxy for `client_ip`."""
    forwarded = {"X-Forwarded-For": client_ip}
    _status, set_cookie, page = http_request(port, "GET", "/accounts/login/", headers=forwarded)
    cookie = set_cookie.split(";", 1)[0]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password})
    headers = {**forwarded, "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    return http_request(port, "POST", "/accounts/login/", body, headers)[0]


def http_request(
    port: int, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """The status, the Set-Cookie header and the body of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body=body or None, headers=headers or {})
    response = connection.getresponse()
    answer = (response.status, response.getheader("Set-Cookie", ""), response.read().decode())
    connection.close()
    return answer


@pytest.mark.parametrize("proxy_headers", ["true", "false"])
def test_proxy_headers_decide_whose_sign_in_failures_count(tmp_path, proxy_headers):
    process, port = start_launcher(
        tmp_path,
        PROXY_HEADERS=proxy_headers,
        CHATSITE_WORKERS="1",
        SIGNIN_LIMIT_PER_IP="2",
        SIGNIN_LIMIT_PER_ACCOUNT="0",
    )
    try:
        wait_until_serving(port, process)
        assert [sign_in(port, "203.0.113.7", name) for name in ["x", "y"]] == [200, 200]
        assert sign_in(port, "203.0.113.7", "z") == 429  # this client is over its limit
        other_client = sign_in(port, "198.51.100.9", "x")
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    if proxy_headers == "true":  # X-Forwarded-For names the client: another one is not refused
        assert other_client == 200, output
    else:  # the header is not believed: every attempt came from the proxy's own address
        assert other_client == 429, output


def test_metrics_are_summed_over_the_worker_processes(tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"a previous run's file")  # wiped at start
    env: dict[str, Any] = {
        "CHATSITE_WORKERS": "2",
        "CHATSITE_ADMIN_USER": "boss",
        "CHATSITE_ADMIN_PASSWORD": "a-long-admin-password-1",
        "METRICS_TOKEN": "scraper-token",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    process, port = start_launcher(tmp_path, **env)  # no provider: every reply ends in an error
    try:
        wait_until_serving(port, process)
        token = run_manage(tmp_path, "api_token", "create", "--user", "boss").strip().split()[-1]
        for _ in range(6):  # each on a new connection, to whichever worker accepts it
            session = api(port, "POST", "/chat/start", token, {})["session_id"]
            open_stream(port, token, session).read()  # to the stream's end
        scrapes = [metrics(port, "scraper-token") for _ in range(6)]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)

    for figures in scrapes:
        assert figures['chatsite_replies_finished_total{status="error"}'] == 6
        assert figures["chatsite_replies_in_flight"] == 0


def metrics(port: int, token: str) -> dict[str, float]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    figures = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _space, number = line.rpartition(" ")
            figures[name] = float(number)
    return figures


@pytest.mark.parametrize(
    ("url", "printed"),
    [
        ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://chatsite:s3cret@host:6380/1", "rediss://chatsite:***@host:6380/1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_the_redis_url_is_printed_without_its_password(url, printed):
    assert launcher._without_password(url) == printed
