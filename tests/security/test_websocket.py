"""The chat socket's handshake and what it does with frames it cannot or must not accept."""

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from websockets.asyncio.client import connect as ws_connect
from websockets.typing import Origin

from chatsite.asgi import application
from conversations.models import Message
from tests.conftest import frames_until, session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)

acookie = sync_to_async(session_cookie_for)
ONE_MIB = 1024 * 1024


async def connect(user, *, origin: bytes | None = b"http://localhost"):
    headers = []
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        headers.append((b"cookie", (await acookie(user)).encode()))
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code


async def still_chats(communicator) -> bool:
    """The socket still carries a whole exchange after what went before."""
    await communicator.send_to(text_data=json.dumps({"action": "send", "message": "still here"}))
    frames = await frames_until(communicator, r"msg-assistant status-complete")
    return "Echo: still here" in frames[-1]


# --- Handshake -------------------------------------------------------------------------------


async def test_a_handshake_from_another_origin_is_refused(alice):
    _, connected, _ = await connect(alice, origin=b"https://evil.example")

    assert not connected


async def test_a_handshake_without_an_origin_is_refused(alice):
    _, connected, _ = await connect(alice, origin=None)

    assert not connected


async def test_an_unauthenticated_socket_is_closed(db):
    _, connected, code = await connect(None)

    assert (connected, code) == (False, 4401)


# --- Frames the socket cannot read ------------------------------------------------------------


async def test_a_binary_frame_gets_an_error_and_the_socket_stays_usable(alice, builtin_roles, fake_openai):
    communicator, _, _ = await connect(alice)

    await communicator.send_to(bytes_data=json.dumps({"message": "as bytes"}).encode())
    error = await communicator.receive_from(timeout=5)
    usable = await still_chats(communicator)
    await communicator.disconnect()

    assert 'id="composer-error"' in error and "could not be read" in error
    assert usable


async def test_malformed_json_gets_an_error_and_the_socket_stays_usable(alice, builtin_roles, fake_openai):
    communicator, _, _ = await connect(alice)

    await communicator.send_to(text_data='{"action": "send", "message": ')
    error = await communicator.receive_from(timeout=5)
    usable = await still_chats(communicator)
    await communicator.disconnect()

    assert 'id="composer-error"' in error and "could not be read" in error
    assert usable


async def test_json_that_is_not_an_object_gets_an_error_and_the_socket_stays_usable(
    alice, builtin_roles, fake_openai
):
    communicator, _, _ = await connect(alice)

    await communicator.send_to(text_data='["send", "hello"]')
    error = await communicator.receive_from(timeout=5)
    usable = await still_chats(communicator)
    await communicator.disconnect()

    assert 'id="composer-error"' in error and "could not be read" in error
    assert usable


async def test_an_unknown_action_gets_an_error_and_the_socket_stays_usable(alice, builtin_roles, fake_openai):
    communicator, _, _ = await connect(alice)

    await communicator.send_to(text_data=json.dumps({"action": "delete_everything", "message": "x"}))
    error = await communicator.receive_from(timeout=5)
    usable = await still_chats(communicator)
    await communicator.disconnect()

    assert 'id="composer-error"' in error and "Unknown action." in error
    assert usable


async def test_a_message_over_the_limit_gets_an_error_naming_the_limit(
    alice, builtin_roles, fake_openai, settings
):
    settings.CHAT_MAX_MESSAGE_CHARS = 50
    communicator, _, _ = await connect(alice)

    await communicator.send_to(text_data=json.dumps({"action": "send", "message": "x" * 51}))
    error = await communicator.receive_from(timeout=5)
    await communicator.disconnect()

    assert 'id="composer-error"' in error
    assert "too long (51 characters; the limit is 50)" in error
    assert await Message.objects.acount() == 0


async def test_an_error_naming_what_was_sent_shows_it_as_text(alice, builtin_roles, fake_openai):
    communicator, _, _ = await connect(alice)

    await communicator.send_to(
        text_data=json.dumps({"action": "send", "role": "<img src=x onerror=alert(1)>", "message": "hi"})
    )
    error = await communicator.receive_from(timeout=5)
    await communicator.disconnect()

    assert "Unknown role: &lt;img src=x onerror=alert(1)&gt;" in error
    assert "<img" not in error


# --- Against a real daphne ------------------------------------------------------------------------


def live_socket(live_app, cookie: str):
    origin = live_app.url.rstrip("/")
    return ws_connect(
        origin.replace("http://", "ws://") + "/ws/chat/",
        origin=Origin(origin),
        additional_headers={"Cookie": cookie},
        max_size=None,
        open_timeout=5,
    )


@pytest.fixture
def roomy_app(app_servers):
    """Daphne whose chat would take a message of any length: only the frame limit is left."""
    return app_servers(CHAT_MAX_MESSAGE_CHARS=str(4 * ONE_MIB))


async def test_a_frame_over_one_mib_is_refused_unread(alice, roomy_app, fake_openai):
    async with live_socket(roomy_app, await acookie(alice)) as socket, asyncio.timeout(10):
        await socket.send(json.dumps({"action": "send", "message": "x" * ONE_MIB}))
        with pytest.raises(websockets.ConnectionClosed):
            await socket.recv()

    assert await Message.objects.acount() == 0
    assert fake_openai.requests == []


async def test_a_frame_over_one_mib_closes_the_socket_with_1009(alice, live_app):
    async with live_socket(live_app, await acookie(alice)) as socket, asyncio.timeout(10):
        await socket.send(json.dumps({"action": "send", "message": "x" * ONE_MIB}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_the_server_keeps_serving_after_a_frame_over_one_mib(alice, live_app):
    cookie = await acookie(alice)
    async with live_socket(live_app, cookie) as socket, asyncio.timeout(10):
        await socket.send(json.dumps({"action": "send", "message": "x" * ONE_MIB}))
        with pytest.raises(websockets.ConnectionClosed):
            await socket.recv()

    async with live_socket(live_app, cookie) as socket, asyncio.timeout(10):
        await socket.send(json.dumps({"action": "send", "message": "still here"}))
        frames = [str(await socket.recv())]
        while "msg-assistant status-complete" not in frames[-1]:
            frames.append(str(await socket.recv()))

    assert "Echo: still here" in frames[-1]
