import asyncio
import contextlib
import json
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chatsite.asgi import application
from conversations import generation
from conversations.models import Conversation, Message
from conversations.sending import message_send
from conversations.services import conversation_create
from tests.conftest import database_write_locked, frames_until, session_cookie_for, wait_for_reply
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

acreate = sync_to_async(conversation_create)
acookie = sync_to_async(session_cookie_for)


TAIL = r"#msg-\d+-tail"


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def streamed_tails(frames: list[str]) -> list[str]:
    """The unfinished tail each delta frame replaces, as HTML."""
    return re.findall(rf'<div hx-swap-oob="innerHTML:{TAIL}">(.*?)</div>', "".join(frames), re.S)


def shown_while_streaming(frames: list[str]) -> str:
    """What a page shows after these frames: the reattach's text, then each frame's blocks and tail."""
    done, tail = "", ""
    for frame in frames:
        reattach = re.search(
            r'class="msg-body markdown stream-text" hx-disable>(.*?)<div id="msg-\d+-tail" '
            r'class="stream-tail">(.*?)</div>',
            frame,
            re.S,
        )
        if reattach:
            done, tail = reattach.groups()
        done += "".join(re.findall(rf'<div hx-swap-oob="beforebegin:{TAIL}">(.*?)</div>', frame, re.S))
        tails = re.findall(rf'<div hx-swap-oob="innerHTML:{TAIL}">(.*?)</div>', frame, re.S)
        if tails:
            tail = tails[-1]
    return done + tail


async def connect(user, path="/ws/chat/", origin=b"http://localhost"):
    headers = [(b"origin", origin)]
    if user is not None:
        headers.append((b"cookie", (await acookie(user)).encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code


async def test_a_message_streams_into_fragments_and_is_saved(alice, builtin_roles, fake_openai):
    fake_openai.queue_reply(Reply(tokens=["Two", " plus", " two", " is", " four."], delay=0.02))
    communicator, connected, _ = await connect(alice)
    assert connected

    await communicator.send_to(text_data=json.dumps({"action": "send", "role": "teacher", "message": "2+2?"}))
    frames = await frames_until(communicator, r'class="msg msg-assistant status-complete"')
    await communicator.disconnect()

    sent, *deltas, final = frames
    assert 'class="msg msg-user' in sent and "2+2?" in sent
    assert 'class="msg msg-assistant status-streaming"' in sent
    tails = streamed_tails(deltas)
    assert len(tails) >= 2
    assert all("Two plus two is four.".startswith(text_of(t).strip()) for t in tails)  # growing, in order
    assert tails[-1] == "<p>Two plus two is four.</p>\n"  # rendered as it streams
    assert "<p>Two plus two is four.</p>" in final
    conversation = await Conversation.objects.select_related("role").aget(owner=alice)
    assert conversation.role.slug == "teacher"
    statuses = [(m.author, m.status) async for m in conversation.messages.order_by("id")]
    assert statuses == [("user", "complete"), ("assistant", "complete")]


async def test_a_new_conversation_is_announced_to_the_sidebar(alice, builtin_roles, fake_openai):
    communicator, _, _ = await connect(alice)

    await communicator.send_to(text_data=json.dumps({"action": "send", "message": "Hello"}))
    sent = await communicator.receive_from(timeout=5)
    await frames_until(communicator, r"msg-assistant status-complete")
    await communicator.disconnect()

    conversation = await Conversation.objects.aget(owner=alice)
    # Listed under Today's heading (always there: hidden by CSS while empty).
    assert f'hx-swap-oob="afterend:#group-today"><li id="conv-{conversation.pk}"' in sent
    assert f'data-url="/c/{conversation.pk}/"' in sent


async def test_an_unauthenticated_socket_is_refused(db):
    _, connected, code = await connect(None)

    assert not connected
    assert code == 4401


async def test_another_users_conversation_socket_is_refused(alice, bob, builtin_roles):
    conversation = await acreate(owner=alice)

    _, connected, code = await connect(bob, f"/ws/chat/{conversation.pk}/")

    assert not connected
    assert code == 4404


async def test_a_socket_from_another_origin_is_refused(alice):
    _, connected, _ = await connect(alice, origin=b"https://evil.example")

    assert not connected


async def test_malformed_json_gets_an_error_and_the_socket_stays_usable(alice, builtin_roles, fake_openai):
    communicator, _, _ = await connect(alice)

    await communicator.send_to(text_data="{not json")
    error = await communicator.receive_from(timeout=5)
    await communicator.send_to(text_data=json.dumps({"message": "still here"}))
    frames = await frames_until(communicator, r"msg-assistant status-complete")
    await communicator.disconnect()

    assert 'id="composer-error"' in error and "could not be read" in error
    assert "Echo: still here" in frames[-1]


async def test_an_empty_message_gets_a_clear_error(alice, builtin_roles, fake_openai):
    communicator, _, _ = await connect(alice)

    await communicator.send_to(text_data=json.dumps({"message": "  "}))
    error = await communicator.receive_from(timeout=5)
    await communicator.disconnect()

    assert "Type a message first." in error
    assert await Conversation.objects.acount() == 0


async def test_sending_into_another_users_conversation_is_refused(alice, bob, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    communicator, _, _ = await connect(bob)

    await communicator.send_to(text_data=json.dumps({"message": "hi", "conversation": str(conversation.pk)}))
    error = await communicator.receive_from(timeout=5)
    await communicator.disconnect()

    assert "does not exist" in error
    assert await Message.objects.acount() == 0


async def test_reconnecting_mid_reply_shows_the_text_so_far_then_the_rest(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["First", " part", " second", " part"], delay=0.3))
    first, _, _ = await connect(alice, f"/ws/chat/{conversation.pk}/")
    await first.send_to(text_data=json.dumps({"message": "go", "conversation": str(conversation.pk)}))
    await frames_until(first, r"First")
    await first.disconnect()

    second, connected, _ = await connect(alice, f"/ws/chat/{conversation.pk}/")
    assert connected
    frames = await frames_until(second, r"msg-assistant status-complete")
    await second.disconnect()

    reattach = frames[0]
    assert 'hx-swap-oob="outerHTML"' in reattach and "First" in reattach
    shown = text_of(shown_while_streaming(frames[:-1])).strip()
    assert shown == "First part second part"  # from the first word, no gap, no duplicate
    reply = await Message.objects.aget(conversation=conversation, author="assistant")
    assert reply.content == "First part second part"


async def test_closing_the_socket_does_not_stop_the_reply(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["a", "b", "c", "d"], delay=0.2))
    communicator, _, _ = await connect(alice)
    await communicator.send_to(text_data=json.dumps({"message": "go", "conversation": str(conversation.pk)}))
    await communicator.receive_from(timeout=5)

    await communicator.disconnect()

    await asyncio.sleep(0)  # let the cancelled watcher unwind
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("watch-")]
    reply = await Message.objects.aget(conversation=conversation, author="assistant")
    saved = await wait_for_reply(reply.pk)
    assert saved.status == Message.Status.COMPLETE
    assert saved.content == "abcd"
    await generation.wait(reply.pk)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("reply-")]
    await asyncio.to_thread(fake_openai.wait_for_open_streams, 0)


async def test_a_socket_cancelled_by_the_server_takes_its_watch_with_it(alice, builtin_roles, fake_openai):
    """As daphne cancels every socket when it stops: the socket's watch must not outlive
    it and write to a closed connection."""
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["a", "b", "c", "d"], delay=0.2))
    communicator, _, _ = await connect(alice)
    await communicator.send_to(text_data=json.dumps({"message": "go", "conversation": str(conversation.pk)}))
    await communicator.receive_from(timeout=5)

    communicator.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await communicator.future

    await asyncio.sleep(0)  # let the cancelled watcher unwind
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("watch-")]
    reply = await Message.objects.aget(conversation=conversation, author="assistant")
    await generation.wait(reply.pk)  # the reply itself goes on, to the end
    assert (await wait_for_reply(reply.pk)).content == "abcd"
    await asyncio.to_thread(fake_openai.wait_for_open_streams, 0)


async def test_the_stop_action_stops_the_reply(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["never", " ends"], hang_after_tokens=1))
    communicator, _, _ = await connect(alice)
    await communicator.send_to(text_data=json.dumps({"message": "go", "conversation": str(conversation.pk)}))
    await frames_until(communicator, r"never")

    await communicator.send_to(text_data=json.dumps({"action": "stop", "conversation": str(conversation.pk)}))
    frames = await frames_until(communicator, r"status-stopped")
    await communicator.disconnect()

    assert 'id="send-button"' in frames[-1]  # the composer is usable again
    reply = await Message.objects.aget(conversation=conversation, author="assistant")
    assert (reply.status, reply.content) == ("stopped", "never")


async def test_stop_keeps_exactly_the_text_the_stopping_socket_had_shown(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(
        Reply(tokens=["Shown", " text", " unseen", " more"], hang_after_tokens=2, hang_again_after_tokens=4)
    )
    communicator, _, _ = await connect(alice)
    await communicator.send_to(text_data=json.dumps({"message": "go", "conversation": str(conversation.pk)}))
    shown = await frames_until(communicator, r"Shown text")
    seen = re.findall(r'id="stop-seen" value="(\d+)"', "".join(shown))[-1]

    # The model runs ahead of what the user had on screen when they pressed Stop.
    await asyncio.to_thread(fake_openai.release)
    await frames_until(communicator, r"unseen more")
    await communicator.send_to(
        text_data=json.dumps({"action": "stop", "conversation": str(conversation.pk), "seen": seen})
    )
    await frames_until(communicator, r"status-stopped")
    await communicator.disconnect()

    reply = await Message.objects.aget(conversation=conversation, author="assistant")
    assert (reply.status, reply.content) == ("stopped", "Shown text")


async def test_socket_errors_use_the_browsers_language(alice, builtin_roles):
    communicator = WebsocketCommunicator(
        application,
        "/ws/chat/",
        headers=[
            (b"origin", b"http://localhost"),
            (b"cookie", (await acookie(alice)).encode()),
            (b"accept-language", b"zh-CN,zh;q=0.9"),
        ],
    )
    await communicator.connect()

    await communicator.send_to(text_data=json.dumps({"message": ""}))
    error = await communicator.receive_from(timeout=5)
    await communicator.disconnect()

    assert "请先输入消息。" in error


async def test_a_second_tab_shows_a_reply_started_in_the_first(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["Shared", " live", " reply"], delay=0.1))
    tab_a, _, _ = await connect(alice, f"/ws/chat/{conversation.pk}/")
    tab_b, _, _ = await connect(alice, f"/ws/chat/{conversation.pk}/")

    await tab_a.send_to(text_data=json.dumps({"message": "hello", "conversation": str(conversation.pk)}))
    frames = await frames_until(tab_b, r"msg-assistant status-complete")
    await frames_until(tab_a, r"msg-assistant status-complete")
    await tab_a.disconnect()
    await tab_b.disconnect()

    assert "hello" in frames[0] and "status-streaming" in frames[0]
    assert "Shared live reply" in frames[-1]


async def test_a_reply_started_from_the_api_shows_in_an_open_tab(alice, builtin_roles, fake_openai):
    from conversations.sending import message_send

    conversation = await acreate(owner=alice)
    tab, _, _ = await connect(alice, f"/ws/chat/{conversation.pk}/")

    await message_send(owner=alice, conversation_id=conversation.pk, content="from elsewhere")
    frames = await frames_until(tab, r"msg-assistant status-complete")
    await tab.disconnect()

    assert "from elsewhere" in frames[0]
    assert "Echo: from elsewhere" in frames[-1]


async def test_another_users_tab_hears_nothing(alice, bob, builtin_roles, fake_openai):
    from conversations.sending import message_send

    conversation = await acreate(owner=alice)
    bobs_conversation = await acreate(owner=bob)
    bobs_tab, _, _ = await connect(bob, f"/ws/chat/{bobs_conversation.pk}/")

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="private")
    await wait_for_reply(exchange.reply.pk)

    assert await bobs_tab.receive_nothing(timeout=0.3)
    await bobs_tab.disconnect()


async def test_a_refused_first_message_leaves_no_empty_conversation(
    alice, builtin_roles, fake_openai, settings
):
    settings.CHAT_LIMIT_MESSAGES_PER_MINUTE = 1
    communicator, _, _ = await connect(alice)
    await communicator.send_to(text_data=json.dumps({"message": "first"}))
    await frames_until(communicator, r"msg-assistant status-complete")

    await communicator.send_to(text_data=json.dumps({"message": "a new chat, too soon"}))
    error = await communicator.receive_from(timeout=5)
    await communicator.disconnect()

    assert "too quickly" in error
    assert await Conversation.objects.acount() == 1


async def test_sync_brings_a_page_rendered_busy_up_to_date(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="done already")
    await wait_for_reply(exchange.reply.pk)
    communicator, _, _ = await connect(alice, f"/ws/chat/{conversation.pk}/")

    await communicator.send_to(
        text_data=json.dumps({"action": "sync", "conversation": str(conversation.pk), "busy": "1"})
    )
    frame = await communicator.receive_from(timeout=5)
    await communicator.disconnect()

    assert "Echo: done already" in frame
    assert 'id="send-button"' in frame  # the composer is usable again


async def test_sync_on_an_idle_page_sends_nothing(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    communicator, _, _ = await connect(alice)

    await communicator.send_to(text_data=json.dumps({"action": "sync", "conversation": str(conversation.pk)}))

    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_markdown_streams_rendered_and_finished_blocks_are_sent_once(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    tokens = ["**Bo", "ld** and", " more\n\n", "- one\n", "- two", "\n\n<img src=x onerror=alert(1)>", "\n"]
    fake_openai.queue_reply(Reply(tokens=tokens, delay=0.05))
    communicator, _, _ = await connect(alice, f"/ws/chat/{conversation.pk}/")
    await communicator.send_to(text_data=json.dumps({"message": "go", "conversation": str(conversation.pk)}))

    frames = await frames_until(communicator, r"msg-assistant status-complete")
    await communicator.disconnect()

    deltas = [f for f in frames if "innerHTML:#msg-" in f]
    assert any("<strong>Bo</strong>" in t or "<strong>Bold</strong>" in t for t in streamed_tails(deltas))
    finished = re.findall(rf'<div hx-swap-oob="beforebegin:{TAIL}">(.*?)</div>', "".join(deltas), re.S)
    assert finished == [
        "<p><strong>Bold</strong> and more</p>\n",
        "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n",
    ]
    sent_at = next(n for n, f in enumerate(deltas) if "beforebegin:" in f)
    assert not [t for t in streamed_tails(deltas[sent_at:]) if "Bold" in t]  # never sent again
    shown = shown_while_streaming(frames[:-1])
    assert "<img" not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown  # sanitised like the end
    seen = [int(v) for f in deltas for v in re.findall(r'id="stop-seen" value="(\d+)"', f)]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # each frame advances the stop's "seen"


async def test_an_earlier_reply_regenerated_over_the_socket_is_reattached_and_stopped_elsewhere(
    alice, builtin_roles, fake_openai
):
    conversation = await acreate(owner=alice)
    first = None
    for text in ["one", "two", "three"]:
        exchange = await message_send(owner=alice, conversation_id=conversation.pk, content=text)
        await wait_for_reply(exchange.reply.pk)
        first = first or exchange
    assert first is not None
    pk = str(conversation.pk)
    fake_openai.queue_reply(Reply(tokens=["Again", " and more"], hang_after_tokens=1))
    tab, _, _ = await connect(alice, f"/ws/chat/{pk}/")

    await tab.send_to(
        text_data=json.dumps({"action": "regenerate", "conversation": pk, "target": str(first.reply.pk)})
    )
    await frames_until(tab, r"Again")
    other_tab, connected, _ = await connect(alice, f"/ws/chat/{pk}/")
    reattached = await frames_until(other_tab, r"Again")
    await other_tab.send_to(text_data=json.dumps({"action": "stop", "conversation": pk}))
    await frames_until(other_tab, r"status-stopped")

    assert connected and 'hx-swap-oob="outerHTML"' in reattached[0]
    shown = [m.content async for m in Message.objects.filter(conversation=conversation, superseded=False)]
    assert shown == ["one", "Again"]
    # The branch it replaced is a version away.
    await other_tab.send_to(
        text_data=json.dumps({"action": "branch", "conversation": pk, "message": str(first.reply.pk)})
    )
    frames = await frames_until(other_tab, r"three")
    await tab.disconnect()
    await other_tab.disconnect()
    assert "1 / 2" in frames[-1]
    shown = [m.content async for m in Message.objects.filter(conversation=conversation, superseded=False)]
    assert shown == ["one", "Echo: one", "two", "Echo: two", "three", "Echo: three"]


async def test_a_message_sent_while_the_database_is_locked_is_answered_with_an_error_and_the_socket_lives(
    alice, builtin_roles, fake_openai, settings
):
    conversation = await acreate(owner=alice)
    pk = str(conversation.pk)
    tab, _, _ = await connect(alice, f"/ws/chat/{pk}/")
    locked = database_write_locked()

    await sync_to_async(locked.__enter__)()
    try:
        await tab.send_to(text_data=json.dumps({"action": "send", "conversation": pk, "message": "Hello"}))
        refused = await tab.receive_from(timeout=5)
    finally:
        await sync_to_async(locked.__exit__)(None, None, None)
    await tab.send_to(text_data=json.dumps({"action": "send", "conversation": pk, "message": "Hello again"}))
    answered = await frames_until(tab, r"msg-assistant status-complete")
    await tab.disconnect()

    assert f"database is busy. Try again in {settings.CHAT_RETRY_AFTER_SECONDS} s" in refused.replace(
        "&#39;", "'"
    )
    assert "Echo: Hello again" in answered[-1]
    assert [m.content async for m in Message.objects.filter(conversation=conversation)] == [
        "Hello again",
        "Echo: Hello again",
    ]
