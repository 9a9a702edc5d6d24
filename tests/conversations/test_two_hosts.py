"""Two app servers as two hosts: separate daphne processes on their own ports, sharing
only Redis and the database, with nothing in front of them but the test's clients.

What one host starts, writes or grants, the other must see: a reply being written, a
signed-in session, a CSRF token, a user's limits and an API token.
"""

import asyncio
import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import websockets
from asgiref.sync import sync_to_async

from conversations.models import Conversation, Message, UserLimit
from conversations.services import conversation_create
from conversations.tokens import api_token_revoke
from tests.conftest import PASSWORD, LiveApp, make_user, session_cookie_for
from tests.fake_openai import Reply
from tests.live import (
    ShownReply,
    Visitor,
    alice_with_conversation,
    api_get,
    open_stream,
    post_stream,
    read_events,
    read_text,
    socket,
    wait_for_status,
)

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = [f"word{n} " for n in range(200)]
# A held reply is still being written however slow the machine: the test says when it goes on.
HELD = 20


def _send(conversation: Conversation, message: str = "go") -> str:
    return json.dumps({"action": "send", "message": message, "conversation": str(conversation.pk)})


async def _follow(tab, shown: ShownReply, until: str) -> None:
    """Read a tab's frames into `shown` until one holds `until`."""
    while True:
        frame = str(await asyncio.wait_for(tab.recv(), 10))
        shown.add(frame)
        if until in frame:
            return


async def _two_hosts_and_a_long_reply(
    app_servers, fake_openai, *, held: bool = False
) -> tuple[LiveApp, LiveApp, str, Conversation]:
    """Two servers, Alice's session cookie and a conversation whose reply will take 4 s,
    or, `held`, will stop after HELD words until the test lets the model go on."""
    server_a, server_b = await sync_to_async(app_servers)(), await sync_to_async(app_servers)()
    alice = await sync_to_async(make_user)("alice")
    cookie = await sync_to_async(session_cookie_for)(alice)
    conversation = await sync_to_async(conversation_create)(owner=alice)
    fake_openai.queue_reply(Reply(tokens=WORDS, delay=0.02, hang_after_tokens=HELD if held else None))
    return server_a, server_b, cookie, conversation


async def test_a_tab_on_another_host_watches_and_stops_a_reply(app_servers, fake_openai):
    server_a, server_b, cookie, conversation = await _two_hosts_and_a_long_reply(app_servers, fake_openai)
    tab_a = await socket(server_a, cookie, conversation.pk)
    tab_b = await socket(server_b, cookie, conversation.pk)

    await tab_a.send(_send(conversation))
    shown = ShownReply()
    while len(shown.words) < 5:  # tab B follows the reply written by server A
        shown.add(str(await asyncio.wait_for(tab_b.recv(), 10)))
    on_screen = shown.words
    await tab_b.send(
        json.dumps({"action": "stop", "conversation": str(conversation.pk), "seen": str(shown.seen)})
    )
    while "status-stopped" not in str(await asyncio.wait_for(tab_b.recv(), 10)):
        pass
    await tab_a.close()
    await tab_b.close()

    reply = await Message.objects.aget(conversation=conversation, author="assistant")
    assert reply.status == Message.Status.STOPPED
    assert reply.content.split() == on_screen  # exactly what tab B had on screen
    assert len(fake_openai.requests) == 1


async def test_a_reply_started_on_one_host_is_reattached_on_the_other(app_servers, fake_openai):
    server_a, server_b, cookie, conversation = await _two_hosts_and_a_long_reply(
        app_servers, fake_openai, held=True
    )
    tab_a = await socket(server_a, cookie, conversation.pk)
    await tab_a.send(_send(conversation))
    on_a = ShownReply()
    while len(on_a.words) < 5:
        on_a.add(str(await asyncio.wait_for(tab_a.recv(), 10)))
    await tab_a.close()  # the tab is closed on host A; the reply goes on being written there

    # Opened again, the page is served by host B: the reply so far, then the rest as it comes.
    tab_b = await socket(server_b, cookie, conversation.pk)
    shown = ShownReply.reattached(str(await asyncio.wait_for(tab_b.recv(), 10)))
    at_reattach = shown.words
    fake_openai.release()
    await _follow(tab_b, shown, "status-complete")
    await tab_b.close()

    reply = await Message.objects.aget(conversation=conversation, author="assistant")
    assert reply.status == Message.Status.COMPLETE
    assert reply.content == "".join(WORDS)
    assert len(on_a.words) <= len(at_reattach) < len(WORDS)  # picked up mid reply
    assert shown.words == reply.content.split()  # no gap, no word twice
    assert len(fake_openai.requests) == 1


async def test_a_host_that_stops_tells_its_sockets_to_reconnect_and_they_reattach_on_another(
    app_servers, fake_openai
):
    server_a, server_b, cookie, conversation = await _two_hosts_and_a_long_reply(
        app_servers, fake_openai, held=True
    )
    writer = await socket(server_b, cookie, conversation.pk)  # the reply is written on host B
    watcher = await socket(server_a, cookie, conversation.pk)
    await writer.send(_send(conversation))
    on_a = ShownReply()
    while len(on_a.words) < 5:
        on_a.add(str(await asyncio.wait_for(watcher.recv(), 10)))
    await writer.close()  # the tab that sent it is closed; the reply goes on

    server_a.process.send_signal(signal.SIGTERM)  # host A is stopped (CHATSITE_DRAIN_SECONDS=0)
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(watcher.recv(), 10)
    # The page's socket reconnects after 1012 (htmx's ws extension), and the proxy
    # sends it to a host still serving.
    again = await socket(server_b, cookie, conversation.pk)
    shown = ShownReply.reattached(str(await asyncio.wait_for(again.recv(), 10)))
    fake_openai.release()
    await _follow(again, shown, "status-complete")
    await again.close()

    assert watcher.close_code == 1012  # service restart: connect again
    reply = await Message.objects.aget(conversation=conversation, author="assistant")
    assert reply.status == Message.Status.COMPLETE
    assert shown.words == reply.content.split() == "".join(WORDS).split()


def _stream_status(app, token: str, session_id: str, message: str, barrier: threading.Barrier) -> int:
    """POST /chat/stream the moment the other caller does; its status, once the answer ends."""
    connection, response = post_stream(app, token, session_id, message, barrier)
    try:
        response.read()  # a refusal's JSON, or the whole stream
        return response.status
    finally:
        connection.close()


def test_two_hosts_racing_for_a_conversations_reply_start_exactly_one(app_servers, fake_openai):
    _alice, raw, conversation = alice_with_conversation()
    server_a, server_b = app_servers(), app_servers()
    fake_openai.queue_reply(Reply(tokens=[f"w{n} " for n in range(20)], delay=0.05))
    barrier = threading.Barrier(2)

    with ThreadPoolExecutor(max_workers=2) as pool:
        racing = [
            pool.submit(_stream_status, server, raw, str(conversation.pk), f"from {name}", barrier)
            for name, server in (("A", server_a), ("B", server_b))
        ]
        statuses = sorted(future.result(timeout=30) for future in racing)

    assert statuses == [200, 409]
    saved = list(Message.objects.filter(conversation=conversation).values_list("author", "status"))
    assert saved == [("user", "complete"), ("assistant", "complete")]
    assert len(fake_openai.requests) == 1


def test_a_sign_in_on_one_host_holds_on_the_other_until_signed_out_there(app_servers):
    make_user("alice")
    server_a, server_b = app_servers(), app_servers()
    browser = Visitor()

    token = browser.csrf_token(server_a, "/accounts/login/")
    form = {"csrfmiddlewaretoken": token, "username": "alice", "password": PASSWORD}
    signed_in, headers, _page = browser.request(server_b, "POST", "/accounts/login/", form)
    home_on_a, _headers, page = browser.request(server_a, "GET", "/")
    token = browser.csrf_token(server_a, "/")  # signing in rotates the token
    signed_out, _headers, _page = browser.request(
        server_b, "POST", "/accounts/logout/", {"csrfmiddlewaretoken": token}
    )
    after_on_a, after_headers, _page = browser.request(server_a, "GET", "/")

    assert (signed_in, headers["Location"]) == (302, "/")
    assert home_on_a == 200 and "alice" in page
    assert signed_out == 302
    assert (after_on_a, after_headers["Location"]) == (302, "/accounts/login/?next=/")


def test_a_csrf_token_from_one_host_is_taken_by_the_other_and_a_post_without_one_is_refused(app_servers):
    alice = make_user("alice")
    conversation = conversation_create(owner=alice, title="First title")
    server_a, server_b = app_servers(), app_servers()
    browser = Visitor()
    name, value = session_cookie_for(alice).split("=", 1)
    browser.cookies[name] = value
    rename = f"/c/{conversation.pk}/rename/"

    token = browser.csrf_token(server_a, f"/c/{conversation.pk}/")
    refused, _headers, _page = browser.request(server_b, "POST", rename, {"title": "Forged"})
    title_after_refusal = Conversation.objects.get(pk=conversation.pk).title
    renamed, _headers, _page = browser.request(
        server_b, "POST", rename, {"title": "Renamed on B", "csrfmiddlewaretoken": token}
    )

    assert refused == 403
    assert title_after_refusal == "First title"
    assert renamed == 302
    assert Conversation.objects.get(pk=conversation.pk).title == "Renamed on B"


def test_messages_per_minute_are_counted_across_hosts(app_servers, fake_openai):
    alice, token, conversation = alice_with_conversation()
    UserLimit.objects.create(user=alice, messages_per_minute=2)
    server_a, server_b = app_servers(), app_servers()
    for server in (server_a, server_b):
        fake_openai.queue_reply(Reply(tokens=["Fine"]))
        connection, response = open_stream(server, token, str(conversation.pk), "one more")
        assert read_events(response)[-1]["type"] == "end"
        connection.close()

    connection, refused = post_stream(server_a, token, str(conversation.pk), "a third in the minute")
    body = refused.read()
    connection.close()

    assert refused.status == 429
    assert json.loads(body)["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    assert Message.objects.filter(conversation=conversation, author="user").count() == 2


def test_a_reply_being_written_on_one_host_counts_against_concurrent_replies_on_the_other(
    app_servers, fake_openai
):
    alice, token, first = alice_with_conversation()
    second = conversation_create(owner=alice)
    UserLimit.objects.create(user=alice, concurrent_replies=1)
    server_a, server_b = app_servers(), app_servers()
    fake_openai.queue_reply(Reply(tokens=["Still", " writing"], hang_after_tokens=1))
    writing, response = open_stream(server_a, token, str(first.pk), "go")
    read_text(response, "Still")

    connection, refused = post_stream(server_b, token, str(second.pk), "and this?")
    body = refused.read()
    connection.close()
    fake_openai.release()
    events = read_events(response)
    writing.close()

    assert refused.status == 429
    assert json.loads(body)["error"]["code"] == "rate_limited"
    assert not Message.objects.filter(conversation=second).exists()
    assert events[-1]["type"] == "end"
    wait_for_status(Message.objects.get(conversation=first, author="assistant").pk, "complete")


def test_an_api_token_works_on_every_host_until_it_is_revoked(app_servers):
    alice, token, _conversation = alice_with_conversation()
    server_a, server_b = app_servers(), app_servers()

    before = [api_get(server, "/chat/sessions", token) for server in (server_a, server_b)]
    api_token_revoke(token_id=alice.api_tokens.get().pk)  # as `manage.py api_token revoke` does
    after = [api_get(server, "/chat/sessions", token) for server in (server_a, server_b)]

    assert before == [200, 200]
    assert after == [401, 401]
