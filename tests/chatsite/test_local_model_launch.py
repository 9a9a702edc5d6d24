"""`./run`'s local model prepared in the background: what the state file says as it goes.

The preparation itself is the real one in test_local_model.py; here the step that
downloads and builds is a stand-in the test drives, to see each state on the way.
"""

import socket
import threading
from pathlib import Path

import pytest

from chatsite import local_model_launch
from chatsite.local_model_build import LocalModelUnavailable
from chatsite.local_model_launch import LocalModelLaunch, stage_of
from providers.local_model_state import LocalModelState, local_model_state


@pytest.mark.parametrize(
    ("line", "stage"),
    [
        ("Waiting for another process that is preparing the local model ...", ("waiting", None)),
        ("Downloading llama-cpp-python==0.3.16 with pip ...", ("downloading", None)),
        ("Compiling llama-server (first run only, a few minutes) ...", ("building", None)),
        ("[ 45%] Building CXX object src/CMakeFiles/llama.dir/llama.cpp.o", ("building", 45)),
        ("[100%] Linking CXX executable ../../bin/llama-server", ("building", 100)),
        ("Starting smollm2-135m-instruct on loopback ...", ("starting", None)),
        ("-- Looking for pthread.h - found", None),
    ],
)
def test_a_progress_line_names_its_stage(line, stage):
    assert stage_of(line) == stage


class Steps:
    """Stands in for start_local_model: says what the test tells it to, then ends as told."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.said = threading.Event()
        self.go_on = threading.Event()
        self.failure: Exception | None = None

    def __call__(self, progress, *, port, api_key, before_start):
        for line in self.lines:
            progress(line)
        self.said.set()
        self.go_on.wait(10)
        if self.failure is not None:
            raise self.failure
        before_start()
        return StartedServer(port, api_key)


class StartedServer:
    model = "smollm2-135m-instruct"

    def __init__(self, port: int, api_key: str) -> None:
        self.port, self.api_key = port, api_key
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> Steps:
    made = Steps()
    monkeypatch.setattr(local_model_launch, "start_local_model", made)
    return made


@pytest.fixture
def launch(tmp_path: Path, settings) -> LocalModelLaunch:
    made = LocalModelLaunch(tmp_path / "db.sqlite3.local-model.json", say=lambda text: None)
    settings.CHATSITE_LOCAL_MODEL_STATE_FILE = str(made.state_file)
    return made


def test_the_state_follows_the_build_while_the_site_serves(steps, launch):
    steps.lines = ["Downloading llama-cpp-python==0.3.16 with pip ...", "[ 12%] Building", "[ 45%] Building"]

    launch.begin()
    assert steps.said.wait(10)
    preparing = local_model_state()
    steps.go_on.set()
    assert launch.wait(10)

    assert preparing == LocalModelState("preparing", stage="building", percent=45)
    assert local_model_state() is None  # ready: nothing to say, nothing refused
    launch.stop()


def test_the_model_starts_at_the_address_the_site_was_given_before_it_was_ready(steps, launch):
    launch.begin()
    assert steps.said.wait(10)
    env = launch.env
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", launch.port))  # held for the model meanwhile
    steps.go_on.set()
    assert launch.wait(10)
    server = launch.server
    launch.stop()

    assert server is not None
    assert env["OPENAI_BASE_URL"] == f"http://127.0.0.1:{server.port}/v1"
    assert env["OPENAI_API_KEY"] == server.api_key and len(server.api_key) >= 40
    assert env["CHATSITE_LOCAL_MODEL_STATE_FILE"] == str(launch.state_file)
    with socket.socket() as model_server:
        model_server.bind(("127.0.0.1", server.port))  # let go of just before the model binds it


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (LocalModelUnavailable("Building needs cmake"), "Building needs cmake"),
        (OSError(28, "No space left on device"), "OSError: [Errno 28] No space left on device"),
    ],
    ids=["unavailable", "unexpected"],
)
def test_a_failed_preparation_is_the_state_with_its_reason(steps, launch, failure, reason):
    steps.failure = failure

    launch.begin()
    steps.go_on.set()
    assert launch.wait(10)
    state = local_model_state()
    launch.stop()

    assert state == LocalModelState("failed", reason=reason)


def test_stopping_while_the_model_starts_stops_it_once_started(monkeypatch, launch):
    said, go_on = threading.Event(), threading.Event()
    started: list[StartedServer] = []

    def start(progress, *, port, api_key, before_start):
        said.set()
        go_on.wait(10)
        started.append(StartedServer(port, api_key))
        return started[0]

    monkeypatch.setattr(local_model_launch, "start_local_model", start)
    launch.begin()
    assert said.wait(10)
    launch.stop()  # Ctrl-C, while llama-server is loading the model
    go_on.set()
    assert launch.wait(10)

    assert started[0].stopped
    assert launch.server is None
    assert not launch.state_file.exists()


def test_a_build_that_stopping_cut_short_writes_and_says_nothing(steps, tmp_path, settings):
    said: list[str] = []
    launch = LocalModelLaunch(tmp_path / "db.sqlite3.local-model.json", say=said.append)
    steps.failure = LocalModelUnavailable("`cmake --build ...` failed (exit 2)")  # Ctrl-C reached cmake
    launch.begin()
    assert steps.said.wait(10)

    stopper = threading.Thread(target=launch.stop)
    stopper.start()  # Ctrl-C: the launcher stops while the build is still running
    while not launch.stopping:
        pass
    steps.go_on.set()  # ... and the build, cut short, fails
    stopper.join(10)

    assert launch.wait(0)  # stop() waited for the thread
    assert not launch.state_file.exists()
    assert not any("No local model is available" in line for line in said)
