"""A real, throwaway PostgreSQL server: for the suite's run on PostgreSQL, and the search
benchmark's (`./run bench --search --postgres`).

Debian's `postgresql` package (`./run test` installs it when missing) provides initdb
and pg_ctl; this makes a cluster in a temporary folder, starts it on a free loopback
port with its socket in that folder, and deletes it all when stopped. PostgreSQL refuses
to run as root: as root the cluster belongs to the `postgres` user the package made.
Durability is off (fsync, full page writes): nothing in it outlives the run.
"""

import os
import shutil
import subprocess
import tempfile
from contextlib import suppress
from pathlib import Path

from chatsite.embedded_redis import free_port

USER = "chatsite"
DATABASE = "chatsite"


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps them off PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("No PostgreSQL found: install Debian's postgresql package (./run test does).")


class PostgresServer:
    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="chatsite-postgres-"))
        self.data = self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgres://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, cwd=self.folder)

    def start(self) -> "PostgresServer":
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run(
            str(self.bin / "initdb"),
            *("-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"),
        )
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.folder),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            # The load tests open many at once (a pool per server process).
            "max_connections": "300",
        }
        options = " ".join(f"-c {name}={value}" for name, value in settings.items())
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)
        return self

    def postmaster_pid(self) -> int:
        """The server's first process (every connection's is its child)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        with suppress(subprocess.CalledProcessError):  # not running
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
