"""REDIS_SENTINELS: every Redis client asks the sentinels for the master and follows a failover."""

import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from chatsite.redis_url import cache_settings, sentinel_addresses, sentinel_master_checked
from tests.redis_sentinel import SentinelSet, sentinel_set

BASE_DIR = Path(__file__).resolve().parents[2]
PASSWORD = "redis-test-password"
SENTINEL_PASSWORD = "sentinel-test-password"
SERVICE = "mymaster"

# In a process of its own, configured only by the environment as a deployment is: the
# cache (django-redis), the reply engine's pool and a reader (conversations.replylog) and
# the channel layer each write, read back, and say which server answered (its port);
# the async pools, two connections each, lend them in turn to twenty commands at once.
# Once before the failover; then, told to go on, after it, retrying while commands fail.
PROBE = """
import asyncio, json, sys
import django
django.setup()
from channels.layers import get_channel_layer
from django.core.cache import cache
from django_redis import get_redis_connection
from redis.exceptions import RedisError
from conversations import replylog

async def round_trip(tag):
    cache.set("probe", tag)
    client = replylog.client()
    await client.xadd(replylog.log_key(1), {"tag": tag})
    reader = replylog.reader_client(block_seconds=1, name="probe")
    try:
        [[_key, entries]] = await reader.xread({replylog.log_key(1): "0"}, block=1000)
        reader_port = (await reader.info("server"))["tcp_port"]
    finally:
        await reader.aclose()
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "probe", "tag": tag})
    message = await layer.receive(channel)
    # More commands at once than the pools have connections (REDIS_POOL_SIZE): they wait.
    crowd = [client.ping() for _ in range(20)] + [layer.group_add("crowd", channel) for _ in range(20)]
    await asyncio.gather(*crowd)
    return {
        "cache": cache.get("probe"),
        "cache_port": get_redis_connection("default").info("server")["tcp_port"],
        "log": entries[-1][1][b"tag"].decode(),
        "log_port": (await client.info("server"))["tcp_port"],
        "reader_port": reader_port,
        "layer": message["tag"],
        "layer_port": (await layer.connection(0).info("server"))["tcp_port"],
    }

async def until_done(tag):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        try:
            async with asyncio.timeout(10):
                result = await round_trip(tag)
            if result["cache"] == tag:  # the cache ignores errors: a failed write reads None
                return result
        except (RedisError, OSError, TimeoutError):
            if loop.time() > deadline:
                raise
        await asyncio.sleep(0.1)

async def main():
    print(json.dumps(await until_done("before")), flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    print(json.dumps(await until_done("after")), flush=True)

asyncio.run(main())
"""


def test_sentinels_are_host_port_pairs():
    assert sentinel_addresses(["10.0.0.1:26379", "[::1]:26380"]) == [("10.0.0.1", 26379), ("::1", 26380)]


def test_a_sentinel_without_a_port_is_refused():
    with pytest.raises(ImproperlyConfigured):
        sentinel_addresses(["10.0.0.1"])


def test_a_service_name_the_url_would_lowercase_is_refused():
    with pytest.raises(ImproperlyConfigured):
        sentinel_master_checked("MyMaster")


def _settings_in_a_process(**env: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import json, runpy; s = runpy.run_path('chatsite/settings.py');"
        " print(json.dumps(s['REDIS_SENTINEL_MASTER']))"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


def test_an_empty_service_name_means_the_default_and_stops_nothing():
    """.env.example writes settings as `NAME=`: an empty one is the default."""
    empty = _settings_in_a_process(REDIS_SENTINEL_MASTER="", REDIS_SENTINELS="")
    odd_without_sentinels = _settings_in_a_process(REDIS_SENTINEL_MASTER="Odd Name", REDIS_SENTINELS="")
    odd_with_sentinels = _settings_in_a_process(
        REDIS_SENTINEL_MASTER="Odd Name", REDIS_SENTINELS="127.0.0.1:26379"
    )

    assert (empty.returncode, empty.stdout.split()[-1]) == (0, '"mymaster"')
    assert odd_without_sentinels.returncode == 0
    assert odd_with_sentinels.returncode != 0
    assert "REDIS_SENTINEL_MASTER must be" in odd_with_sentinels.stderr


def test_the_cache_asks_the_sentinels_for_the_service_with_the_urls_credentials_and_database():
    cache = cache_settings(
        "redis://user:secret@ignored-host:6379/3",
        sentinels=[("10.0.0.1", 26379)],
        master="mymaster",
        sentinel_kwargs={"password": "s"},
        options={"SOCKET_TIMEOUT": 2},
    )

    assert cache["LOCATION"] == ["redis://user:secret@mymaster/3"]
    assert cache["OPTIONS"]["SENTINELS"] == [("10.0.0.1", 26379)]
    assert cache["OPTIONS"]["SENTINEL_KWARGS"] == {"password": "s"}


def _line_within(process: subprocess.Popen[str], seconds: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=seconds), f"the probe said nothing within {seconds} s"
    line = process.stdout.readline()
    assert line, "the probe ended early"
    return line


def _wait_for(condition, *, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if found := condition():
                return found
        except redis.RedisError:  # NOGOODSLAVE until the sentinel has seen the replica synced
            pass
        assert time.monotonic() < deadline, "the sentinel did not get there in time"
        time.sleep(0.1)


def _fail_over(servers: SentinelSet, how: str) -> None:
    """Done once the sentinel names the replica, and (SENTINEL FAILOVER) the old master is
    its replica: from then on it refuses writes."""
    sentinel = servers.sentinel.connection()
    if how == "the master dies":
        assert servers.master.process is not None
        servers.master.process.kill()
    else:
        _wait_for(lambda: sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE))
    new_master = ("127.0.0.1", servers.replica.port)
    _wait_for(lambda: sentinel.sentinel_get_master_addr_by_name(SERVICE) == new_master)
    if how == "SENTINEL FAILOVER":
        _wait_for(lambda: servers.master.connection().role()[0] == b"slave")


@pytest.mark.parametrize("how", ["SENTINEL FAILOVER", "the master dies"])
def test_every_client_follows_the_master_through_a_failover(how: str):
    with sentinel_set(service=SERVICE, password=PASSWORD, sentinel_password=SENTINEL_PASSWORD) as servers:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            # The host is the service's name: with sentinels it is never connected to.
            "REDIS_URL": f"redis://:{PASSWORD}@{SERVICE}/0",
            "REDIS_SENTINELS": f"127.0.0.1:{servers.sentinel.port}",
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
            "REDIS_POOL_SIZE": "2",
        }
        env.pop("REDIS_SENTINEL_MASTER", None)  # the default, mymaster
        probe = subprocess.Popen(
            # A reader's pool closed with the sentinels' connections still open says so.
            [sys.executable, "-W", "always::ResourceWarning", "-c", PROBE],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        errors = ""
        try:
            before = json.loads(_line_within(probe, 30))
            _fail_over(servers, how)
            assert probe.stdin is not None
            probe.stdin.write("go on\n")
            probe.stdin.flush()
            after = json.loads(_line_within(probe, 60))
            assert probe.wait(timeout=10) == 0
        finally:
            if probe.poll() is None:
                probe.kill()
            errors = probe.communicate()[1]
            sys.stderr.write(errors)  # shown by pytest if the test fails

    old, new = servers.master.port, servers.replica.port
    assert before == {
        **{key: "before" for key in ("cache", "log", "layer")},
        **{key: old for key in ("cache_port", "log_port", "reader_port", "layer_port")},
    }
    assert after == {
        **{key: "after" for key in ("cache", "log", "layer")},
        **{key: new for key in ("cache_port", "log_port", "reader_port", "layer_port")},
    }
    assert "ResourceWarning" not in errors
