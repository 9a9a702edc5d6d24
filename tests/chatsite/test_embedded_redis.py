import redis

from chatsite.embedded_redis import EmbeddedRedis


def test_starts_a_real_redis_on_a_free_loopback_port():
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        assert client.config_get("save")["save"] == ""  # persistence off
        client.close()


def test_stop_ends_the_server_process():
    server = EmbeddedRedis().start()
    process = server.process
    assert process is not None

    server.stop()

    assert process.poll() is not None
