"""The built-in tiny local model: an OpenAI-compatible endpoint on loopback, for when no
provider (OPENAI_BASE_URL / OPENAI_API_KEY) is configured.

llama.cpp's `llama-server` serves SmolLM2-135M-Instruct; chatsite.local_model_build
gets both (downloaded and compiled on first use, then cached).

    with start_local_model(print) as server:
        AsyncOpenAI(base_url=server.base_url, api_key=server.api_key)  # model=server.model
"""

import atexit
import http.client
import os
import secrets
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from chatsite.embedded_redis import free_port
from chatsite.local_model_build import (
    MODEL_ALIAS,
    LocalModelUnavailable,
    Progress,
    ensure_model,
    ensure_server_binary,
    output_tail,
)

MAX_REPLY_TOKENS = 512


class LocalModelServer:
    """A llama-server process on a free loopback port, serving one GGUF model under `model`.

    It requires `api_key` (random per start): llama-server allows any CORS origin, so
    without a key any web page open in a browser on this machine could use it.
    """

    def __init__(
        self,
        *,
        binary: Path,
        model_path: Path,
        model: str = MODEL_ALIAS,
        parallel: int = 4,
        context_size: int = 8192,
        threads: int | None = None,
    ) -> None:
        self.binary = binary
        self.model_path = model_path
        self.model = model
        self.parallel = parallel
        self.context_size = context_size
        self.threads = threads or min(4, len(os.sched_getaffinity(0)))
        self.port: int | None = None
        self.api_key = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(
        self, *, timeout: float = 60.0, attempts: int = 3, port: int | None = None, api_key: str = ""
    ) -> "LocalModelServer":
        """Serves on `port` with `api_key` when given (the app was told them before the
        model was ready), else on a free port with a new random key."""
        if self.process is not None:
            return self
        failure = ""
        self.api_key = api_key or secrets.token_urlsafe(32)
        # The key goes in the environment, not the command line that `ps` shows; no other
        # LLAMA_* variable from ours can change what the arguments below say.
        env = {name: value for name, value in os.environ.items() if not name.startswith("LLAMA_")}
        env["LLAMA_API_KEY"] = self.api_key
        for _ in range(1 if port else attempts):
            chosen = port or free_port()
            # Its log goes to an unnamed temporary file: a pipe nobody reads would fill
            # up and stall it. On a failed start the file's tail says why.
            log = tempfile.TemporaryFile(prefix="chatsite-llama-server-")  # noqa: SIM115 - closed by stop()
            try:
                process = self._spawn(chosen, env, log)
            except OSError as exc:
                log.close()
                raise LocalModelUnavailable(f"Could not run {self.binary}: {exc}") from exc
            self.process, self.port, self._log = process, chosen, log
            atexit.register(self.stop)
            if self._wait_ready(timeout):
                return self
            log.seek(0)
            failure = output_tail(log.read().decode(errors="replace"))
            self.stop()
        raise LocalModelUnavailable(
            f"{self.binary.name} did not start serving {self.model_path.name}:\n{failure}"
        )

    def _spawn(self, port: int, env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                str(self.binary),
                *("--model", str(self.model_path), "--alias", self.model),
                *("--host", "127.0.0.1", "--port", str(port)),
                # `parallel` replies at once, sharing one KV cache of `context_size`
                # tokens (SmolLM2's trained context): one long conversation may use it all.
                *("--parallel", str(self.parallel), "--kv-unified"),
                *("--ctx-size", str(self.context_size)),
                *("--threads", str(self.threads), "--threads-batch", str(self.threads)),
                *("--cache-ram", "256"),  # prompt cache: the default allows 8 GiB
                # A reply ends by this many tokens at the latest: the tiny model can ramble
                # on without ever ending its answer (seen: minutes of text for "Say hello.").
                *("--n-predict", str(MAX_REPLY_TOKENS)),
                *("--no-webui", "--no-slots"),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the app first; it stops us in order.
        )

    def _wait_ready(self, timeout: float) -> bool:
        """Polls /health until the model is loaded (200); False if the process exits or time runs out."""
        assert self.process is not None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # e.g. the port was taken between choosing and binding
            try:
                with opener.open(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (OSError, http.client.HTTPException):
                pass  # not listening yet, or 503 (an HTTPError) while the model loads
            time.sleep(0.1)
        return False

    def stop(self, *, timeout: float = 10.0) -> None:
        """Ends the server (SIGTERM, then SIGKILL after `timeout`) and waits until it is gone."""
        atexit.unregister(self.stop)
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LocalModelServer":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_local_model(
    progress: Progress,
    *,
    port: int | None = None,
    api_key: str = "",
    before_start: Callable[[], None] = lambda: None,
) -> LocalModelServer:
    """Fetches the model and builds llama-server if they are not cached, then serves it
    (on `port` with `api_key` when given; `before_start` frees a port held for it)."""
    binary = ensure_server_binary(progress)  # first: it is what fails on a machine without a compiler
    model_path = ensure_model(progress)
    progress(f"Starting {MODEL_ALIAS} on loopback ...")
    before_start()
    return LocalModelServer(binary=binary, model_path=model_path).start(port=port, api_key=api_key)
