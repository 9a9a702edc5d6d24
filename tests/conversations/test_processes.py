"""Replies across real daphne processes: shutdown, crash and drain, a Redis restart, an
idle socket (two servers at once: test_two_hosts.py)."""

import asyncio
import http.client
import json
import signal
import time
from urllib.parse import urlparse

import pytest
import websockets
from asgiref.sync import sync_to_async

from chatsite.embedded_redis import EmbeddedRedis
from conversations import replylog
from conversations.models import Message
from conversations.services import conversation_create
from tests.conftest import ARTIFACTS, make_user, session_cookie_for
from tests.fake_openai import Reply
from tests.live import (
    ShownReply,
    alice_with_conversation,
    open_stream,
    read_chunks,
    read_events,
    read_text,
    socket,
    wait_for_status,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_sigterm_mid_reply_saves_the_partial_text_as_interrupted(app_servers, fake_openai):
    app = app_servers()
    _alice, token, conversation = alice_with_conversation()
    fake_openai.queue_reply(Reply(tokens=["Saved", " before", " shutdown", " lost"], hang_after_tokens=3))
    connection, response = open_stream(app, token, str(conversation.pk), "go")
    read_text(response, "Saved before shutdown")  # the three tokens are published; the fourth never comes
    fake_openai.wait_for_open_streams(1)

    app.process.send_signal(signal.SIGTERM)
    app.process.wait(timeout=15)
    connection.close()

    reply = Message.objects.get(conversation=conversation, author="assistant")
    assert reply.status == Message.Status.INTERRUPTED
    assert reply.content == "Saved before shutdown"


def test_after_a_crash_the_next_start_marks_the_reply_interrupted_with_its_checkpoint(
    app_servers, fake_openai
):
    crash_env = {"CHAT_LEASE_SECONDS": "1", "CHAT_CHECKPOINT_SECONDS": "0.1"}
    app = app_servers(**crash_env)
    _alice, token, conversation = alice_with_conversation()
    fake_openai.queue_reply(Reply(tokens=[f"w{n} " for n in range(100)], delay=0.03))
    connection, response = open_stream(app, token, str(conversation.pk), "go")
    read_chunks(response, 8)
    reply = Message.objects.get(conversation=conversation, author="assistant")
    checkpoint = wait_for_checkpoint(reply.pk)

    app.process.kill()  # SIGKILL: nothing runs on the way down
    app.process.wait()
    connection.close()
    assert Message.objects.get(pk=reply.pk).status == Message.Status.STREAMING
    wait_for_lease_to_expire(conversation.pk)  # nobody renews the dead process's lease
    app_servers(**crash_env)  # a new process reaps orphans when it starts

    saved = wait_for_status(reply.pk, Message.Status.INTERRUPTED)
    assert saved.content.startswith(checkpoint)
    assert saved.content.startswith("w0 w1 ")


def wait_for_lease_to_expire(conversation_id: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while replylog.active_held(conversation_ids=[conversation_id]):
        assert time.monotonic() < deadline, "the reply's lease did not expire"
        time.sleep(0.05)


def wait_for_checkpoint(reply_id: int) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        content = Message.objects.get(pk=reply_id).content
        if content:
            return content
        time.sleep(0.05)
    raise AssertionError("no checkpoint was written")


def _get(app, path: str, cookie: str) -> int:
    address = urlparse(app.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Cookie": cookie})
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_redis_restart_keeps_users_signed_in_and_chatting(app_servers, fake_openai):
    redis = EmbeddedRedis().start()
    try:
        app = app_servers(REDIS_URL=redis.url)
        alice, token, conversation = alice_with_conversation()
        cookie = session_cookie_for(alice)
        assert _get(app, "/", cookie) == 200

        port = redis.port
        redis.process.kill()  # type: ignore[union-attr]
        redis.stop()
        assert _get(app, "/", cookie) == 200  # still signed in while Redis is down

        redis.port = port
        redis.start()
        back = time.monotonic()
        events: list[str] = []
        while time.monotonic() - back < 5 and "end" not in events:
            try:
                connection, response = open_stream(app, token, str(conversation.pk), "still there?")
            except AssertionError:  # not yet: the stream was refused
                time.sleep(0.2)
                continue
            try:
                lines = response.read().decode().splitlines()
            finally:
                connection.close()
            events = [json.loads(line[6:])["type"] for line in lines if line.startswith("data: ")]
        assert events[-1:] == ["end"], "no working chat within 5 s of Redis returning"
        assert _get(app, "/", cookie) == 200
    finally:
        redis.stop()


async def test_sigterm_sends_a_chat_socket_its_saved_reply_then_closes_it_with_1012(app_servers, fake_openai):
    app = await sync_to_async(app_servers)()
    alice = await sync_to_async(make_user)("alice")
    cookie = await sync_to_async(session_cookie_for)(alice)
    conversation = await sync_to_async(conversation_create)(owner=alice)
    fake_openai.queue_reply(Reply(tokens=[f"w{n} " for n in range(300)], delay=0.01, hang_after_tokens=20))
    tab = await socket(app, cookie, conversation.pk)
    await tab.send(json.dumps({"action": "send", "message": "go", "conversation": str(conversation.pk)}))
    shown = ShownReply()
    while len(shown.words) < 5:
        shown.add(str(await asyncio.wait_for(tab.recv(), 10)))

    app.process.send_signal(signal.SIGTERM)  # CHATSITE_DRAIN_SECONDS=0: stopped at once
    frames = []
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            frames.append(str(await asyncio.wait_for(tab.recv(), 10)))

    assert any('class="msg msg-assistant status-interrupted"' in frame for frame in frames)
    assert tab.close_code == 1012  # service restart: the page connects again
    reply = await Message.objects.aget(conversation=conversation, author="assistant")
    assert reply.status == Message.Status.INTERRUPTED


def test_sigterm_gives_every_stream_its_end_and_saves_what_it_was_sent(app_servers, fake_openai):
    app = app_servers()
    alice, token, first = alice_with_conversation()
    second = conversation_create(owner=alice)
    for _ in range(2):
        fake_openai.queue_reply(Reply(tokens=[f"w{n} " for n in range(300)], delay=0.02))
    streams = [open_stream(app, token, str(c.pk), "go") for c in (first, second)]
    for _connection, response in streams:
        read_chunks(response, 5)

    app.process.send_signal(signal.SIGTERM)
    received = [read_events(response) for _connection, response in streams]
    app.process.wait(timeout=15)
    for connection, _response in streams:
        connection.close()

    for conversation, events in zip((first, second), received, strict=True):
        assert events[-1]["type"] == "error" and events[-1]["status"] == "interrupted"
        reply = Message.objects.get(conversation=conversation, author="assistant")
        assert reply.status == Message.Status.INTERRUPTED
        sent = "".join(event["content"] for event in events if event["type"] == "chunk")
        # The 5 chunks read before the signal, then the rest: the saved text is all of it.
        assert reply.content.endswith(sent) and len(reply.content.split()) > 5


def wait_for_log(log_offset: int, text: str, within: float = 10.0) -> None:
    log = ARTIFACTS / "daphne.log"
    deadline = time.monotonic() + within
    while text not in log.read_bytes()[log_offset:].decode(errors="replace"):
        assert time.monotonic() < deadline, f"the server never logged {text!r}"
        time.sleep(0.05)


def post_message(app, token: str, session_id: str, message: str) -> tuple[int, dict[str, str], dict]:
    address = urlparse(app.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    connection.request(
        "POST",
        "/chat/stream",
        body=json.dumps({"session_id": session_id, "message": message}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    return response.status, dict(response.getheaders()), body


def test_sigterm_lets_a_running_reply_finish_and_refuses_new_ones(app_servers, fake_openai):
    logged_before = (ARTIFACTS / "daphne.log").stat().st_size if (ARTIFACTS / "daphne.log").exists() else 0
    app = app_servers(CHATSITE_DRAIN_SECONDS="20")
    alice, token, running = alice_with_conversation()
    later = conversation_create(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["Finished", " after", " the", " signal"], hang_after_tokens=2))
    connection, response = open_stream(app, token, str(running.pk), "go")
    read_text(response, "Finished after")
    fake_openai.wait_for_open_streams(1)

    app.process.send_signal(signal.SIGTERM)
    wait_for_log(logged_before, "waiting up to 20 s for 1 running reply")
    status, headers, refused = post_message(app, token, str(later.pk), "a new message")
    fake_openai.release()  # the model goes on: the reply ends on its own, within the drain
    events = read_events(response)
    app.process.wait(timeout=30)
    connection.close()

    assert status == 503
    assert refused["error"]["code"] == "unavailable"
    assert headers["Retry-After"] == "5"
    assert not Message.objects.filter(conversation=later).exists()  # nothing half-saved
    assert events[-1]["type"] == "end" and events[-1]["status"] == "complete"
    assert "".join(e["content"] for e in events if e["type"] == "chunk") == " the signal"
    reply = Message.objects.get(conversation=running, author="assistant")
    assert reply.status == Message.Status.COMPLETE
    assert reply.content == "Finished after the signal"


def test_a_reply_longer_than_the_drain_is_saved_as_interrupted_with_what_was_sent(app_servers, fake_openai):
    app = app_servers(CHATSITE_DRAIN_SECONDS="1")
    _alice, token, conversation = alice_with_conversation()
    fake_openai.queue_reply(Reply(tokens=["Kept", " through", " the", " drain"], hang_after_tokens=3))
    connection, response = open_stream(app, token, str(conversation.pk), "go")
    read_text(response, "Kept through the")
    fake_openai.wait_for_open_streams(1)

    app.process.send_signal(signal.SIGTERM)  # the model never goes on
    events = read_events(response)
    app.process.wait(timeout=30)
    connection.close()

    assert events[-1]["type"] == "error" and events[-1]["status"] == "interrupted"
    reply = Message.objects.get(conversation=conversation, author="assistant")
    assert reply.status == Message.Status.INTERRUPTED
    assert reply.content == "Kept through the"


def test_with_log_format_json_each_reply_is_one_json_line(app_servers, fake_openai):
    log = ARTIFACTS / "daphne.log"
    logged_before = log.stat().st_size if log.exists() else 0
    app = app_servers(LOG_FORMAT="json")
    _alice, token, conversation = alice_with_conversation()
    fake_openai.queue_reply(Reply(tokens=["Logged", " as", " JSON"], usage=(9, 3)))
    connection, response = open_stream(app, token, str(conversation.pk), "go")
    events = read_events(response)
    connection.close()
    reply = Message.objects.get(conversation=conversation, author="assistant")
    wait_for_log(logged_before, f'"reply_id": {reply.pk}')

    lines = log.read_bytes()[logged_before:].decode().splitlines()
    [entry] = [json.loads(line) for line in lines if f'"reply_id": {reply.pk}' in line]
    assert events[-1]["type"] == "end"
    assert entry["status"] == "complete"
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == (9, 3)
    assert entry["chars"] == len("Logged as JSON")
    assert entry["logger"] == "conversations.generation"


async def test_an_idle_chat_socket_stays_open(app_servers):
    """channels-redis waits 5 s at a time for a socket's messages; a Redis read timeout of
    the same length closed every idle socket with 1011 every few seconds."""
    app = await sync_to_async(app_servers)()
    alice = await sync_to_async(make_user)("alice")
    cookie = await sync_to_async(session_cookie_for)(alice)
    log = ARTIFACTS / "daphne.log"
    logged_before = log.stat().st_size
    tab = await socket(app, cookie)

    with pytest.raises(TimeoutError):  # nothing arrives, and above all no close
        await asyncio.wait_for(tab.recv(), 60)
    await tab.send(json.dumps({"action": "nonsense"}))
    still_answering = str(await asyncio.wait_for(tab.recv(), 5))
    await tab.close()

    assert "Unknown action" in still_answering
    with log.open("rb") as written:
        written.seek(logged_before)
        logged = written.read().decode(errors="replace")
    assert "Traceback" not in logged and "TimeoutError" not in logged
