"""`./run`'s built-in model, prepared while the site already serves.

A first run downloads the model and compiles llama-server for minutes; a newcomer
should see the site at once meanwhile. So the model's port and key are chosen first
and handed to the serving processes with the rest of their environment; a thread then
downloads, builds and starts the model on that port, writing how far it has got to
the state file that the page and every send read (providers.local_model_state). Chat
works the moment the state says ready; until then a message is refused, with the
progress, before anything is saved.
"""

import re
import secrets
import socket
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from chatsite.local_model import LocalModelServer, start_local_model
from chatsite.local_model_build import MODEL_ALIAS, LocalModelUnavailable
from providers.local_model_state import LocalModelState, local_model_state_write

PERCENT = re.compile(r"\[\s*(\d+)%\]")
# What the progress lines of chatsite.local_model_build announce, by how they start.
STAGES = (
    ("Waiting for another process", "waiting"),
    ("Downloading", "downloading"),
    ("Extracting", "building"),
    ("Compiling", "building"),
    ("Starting", "starting"),
)


def _print(text: str) -> None:
    print(text, flush=True)


def console_progress(say: Callable[[str], None] = _print) -> Callable[[str], None]:
    """Prints the build's progress: each new percentage once, and every other line."""
    last = ""

    def show(line: str) -> None:
        nonlocal last
        match = PERCENT.match(line)
        if match is None:
            say(f"  {line}")
        elif match.group(1) != last:
            last = match.group(1)
            say(f"  building llama-server: {last}%")

    return show


def stage_of(line: str) -> tuple[str, int | None] | None:
    """The stage (and build percentage) a progress line announces; None for any other line."""
    match = PERCENT.match(line)
    if match is not None:
        return "building", int(match.group(1))
    for start, stage in STAGES:
        if line.startswith(start):
            return stage, None
    return None


class LocalModelLaunch:
    """The local model's port, key and state file, and the thread that prepares it."""

    def __init__(self, state_file: Path, say: Callable[[str], None] = _print) -> None:
        # Held, bound, until llama-server is about to bind it: for the minutes of a build
        # the kernel hands this port to no other socket (the workers' many connections
        # to Redis take ephemeral ports from the same range).
        self._reserved: socket.socket | None = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._reserved.bind(("127.0.0.1", 0))
        self.port = int(self._reserved.getsockname()[1])
        # Random per start: llama-server allows any CORS origin, so without a key any web
        # page open in a browser on this machine could use it.
        self.api_key = secrets.token_urlsafe(32)
        self.state_file = state_file
        self.server: LocalModelServer | None = None
        self._say = say
        self._console = console_progress(say)
        self._shown = LocalModelState("preparing", stage="starting")
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._prepare, name="local-model", daemon=True)

    @property
    def env(self) -> dict[str, str]:
        """What the serving processes need to talk to it, ready or not."""
        return {
            "OPENAI_BASE_URL": f"http://127.0.0.1:{self.port}/v1",
            "OPENAI_API_KEY": self.api_key,
            "OPENAI_MODEL": MODEL_ALIAS,
            "CHATSITE_LOCAL_MODEL_IN_USE": "true",
            "CHATSITE_LOCAL_MODEL_STATE_FILE": str(self.state_file),
        }

    def begin(self) -> "LocalModelLaunch":
        local_model_state_write(self.state_file, self._shown)
        self._thread.start()
        return self

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wait(self, timeout: float | None = None) -> bool:
        """Whether preparing is over (ready, failed or stopped) within `timeout` seconds."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _write(self, state: LocalModelState) -> None:
        """The new state, unless the launcher is stopping (its file is gone, and stays gone)."""
        with self._lock:
            if not self._stopping:
                local_model_state_write(self.state_file, state)

    def _progress(self, line: str) -> None:
        if self._stopping:
            return
        self._console(line)
        announced = stage_of(line)
        if announced is None:
            return
        state = LocalModelState("preparing", stage=announced[0], percent=announced[1])
        if state != self._shown:  # a write per change, not per line of the compiler's
            self._shown = state
            self._write(state)

    def _release_port(self) -> None:
        reserved, self._reserved = self._reserved, None
        if reserved is not None:
            reserved.close()

    def _prepare(self) -> None:
        try:
            server = start_local_model(
                self._progress, port=self.port, api_key=self.api_key, before_start=self._release_port
            )
            with self._lock:
                if self._stopping:  # Ctrl-C while it was starting
                    server.stop()
                    return
                self.server = server
            self._write(LocalModelState("ready"))
        except LocalModelUnavailable as exc:
            self._fail(exc.reason)
            return
        except Exception as exc:  # e.g. a full disk: said, never a thread that dies silently
            traceback.print_exc()
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        finally:
            self._release_port()
        self._say(f"  The local model is ready: {server.model} at {server.base_url}")

    def _fail(self, reason: str) -> None:
        if self._stopping:  # a build cut short by Ctrl-C is no failure to report
            return
        self._write(LocalModelState("failed", reason=reason))
        self._say(f"  No local model is available: {reason}")
        self._say("  Chatsite serves without a model; set OPENAI_API_KEY or OPENAI_BASE_URL in .env.")

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stops the model, or its preparation: a build that Ctrl-C ended, or a server being
        started, is waited for (up to `timeout`), so nothing it starts outlives the launcher."""
        with self._lock:
            self._stopping = True
            server, self.server = self.server, None
        if server is not None:
            server.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.state_file.unlink(missing_ok=True)
