"""Real Redis servers for the Sentinel tests: a master and its replica with a password,
and a sentinel (with a password of its own) that watches them and can fail over."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from chatsite.embedded_redis import EmbeddedRedis


class ServerWithPassword(EmbeddedRedis):
    """A master, or a replica of one: either may be the other after a failover."""

    def __init__(self, *, password: str, replica_of: int | None = None) -> None:
        super().__init__()
        self.password = password
        self.replica_of = replica_of

    def command(self, port: int) -> list[str]:
        # masterauth on both: the old master replicates from the new one after a failover.
        command = [*super().command(port), "--requirepass", self.password, "--masterauth", self.password]
        if self.replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        return command

    def connection(self) -> redis.Redis:
        assert self.port is not None
        return redis.Redis(port=self.port, password=self.password, socket_timeout=2)


class SentinelServer(EmbeddedRedis):
    """redis-server --sentinel: it needs a config file of its own, which it rewrites."""

    def __init__(self, *, service: str, master: ServerWithPassword, password: str) -> None:
        super().__init__()
        self.service = service
        self.master = master
        self.password = password

    def command(self, port: int) -> list[str]:
        base = super().command(port)
        config = Path(base[base.index("--dir") + 1]) / "sentinel.conf"
        # A quorum of one, and short timeouts: a failover takes a second or two.
        config.write_text(
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel auth-pass {self.service} {self.master.password}\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 5000\n"
            f"requirepass {self.password}\n"
        )
        return [base[0], str(config), "--sentinel", *base[1:]]

    def connection(self) -> redis.Redis:
        assert self.port is not None
        return redis.Redis(port=self.port, password=self.password, socket_timeout=2, decode_responses=True)


@dataclass(frozen=True)
class SentinelSet:
    master: ServerWithPassword
    replica: ServerWithPassword
    sentinel: SentinelServer


@contextmanager
def sentinel_set(*, service: str, password: str, sentinel_password: str) -> Iterator[SentinelSet]:
    started: list[EmbeddedRedis] = []
    try:
        master = ServerWithPassword(password=password)
        started.append(master.start())
        replica = ServerWithPassword(password=password, replica_of=master.port)
        started.append(replica.start())
        sentinel = SentinelServer(service=service, master=master, password=sentinel_password)
        started.append(sentinel.start())
        yield SentinelSet(master=master, replica=replica, sentinel=sentinel)
    finally:
        for server in reversed(started):
            server.stop()
