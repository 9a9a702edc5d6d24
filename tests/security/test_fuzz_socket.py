"""Malformed frames at every chat socket route: an error for each, and the socket stays usable."""

import asyncio
import contextlib
import json
import traceback
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chatsite.asgi import application
from tests.conftest import frames_until, session_cookie_for
from tests.security.fuzz import (
    DEEP,
    ONE_MIB,
    WRONG_TYPES,
    asnapshot,
    diff,
)
from tests.security.routes import (
    websocket_routes,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_password_hashing")]


def frame_corpus(pk: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, send_to kwargs) of frames the consumer must answer with an error."""
    other = str(uuid.uuid4())

    def text(value: Any) -> dict[str, Any]:
        return {"text_data": value if isinstance(value, str) else json.dumps(value)}

    frames: list[tuple[str, dict[str, Any]]] = [
        ("blank", text(" ")),
        ("truncated-json", text('{"action": "send", "message": ')),
        ("json-array", text('["send", "hello"]')),
        ("json-number", text("42")),
        ("json-string", text('"send"')),
        ("json-null", text("null")),
        ("json-nested-100000-deep", text("[" * DEEP + "]" * DEEP)),
        ("json-objects-100000-deep", text('{"a": ' * DEEP + "1" + "}" * DEEP)),
        ("json-huge-integer", text('{"action": "send", "message": ' + "9" * 5000 + "}")),
        ("binary-garbage", {"bytes_data": b"\xff\xfe\x00" * 100}),
        ("binary-json", {"bytes_data": json.dumps({"action": "send", "message": "hi"}).encode()}),
        ("message-2mib", text({"action": "send", "message": "x" * (2 * ONE_MIB)})),
        ("message-lone-surrogate", text('{"action": "send", "message": "\\ud800"}')),
        ("message-raw-lone-surrogate", text('{"action": "send", "message": "\ud800"}')),
        ("message-nul", text({"action": "send", "message": "a\x00b"})),
        (
            "edit-lone-surrogate",
            text('{"action": "edit", "conversation": "PK", "message": "\\udc00"}'.replace("PK", pk)),
        ),
        ("edit-nul", text({"action": "edit", "conversation": pk, "message": "a\x00b"})),
        ("version-huge-id", text({"action": "version", "conversation": pk, "reply": "9" * 40})),
        ("version-not-a-number", text({"action": "version", "conversation": pk, "reply": "½"})),
        ("stop-huge-seen", text({"action": "stop", "conversation": other, "seen": "9" * 40})),
        ("unknown-action", text({"action": "delete_everything"})),
    ]
    for wrong in [*WRONG_TYPES, None]:
        kind = type(wrong).__name__
        frames += [
            (f"action-as-{kind}", text({"action": wrong, "conversation": pk, "message": "hi"})),
            (f"message-as-{kind}", text({"action": "send", "message": wrong})),
            (f"edit-message-as-{kind}", text({"action": "edit", "conversation": pk, "message": wrong})),
            (f"reply-as-{kind}", text({"action": "version", "conversation": pk, "reply": wrong})),
        ]
        if wrong:  # an empty value means "a new conversation"
            frames += [
                (
                    f"send-conversation-as-{kind}",
                    text({"action": "send", "conversation": wrong, "message": "hi"}),
                ),
                (
                    f"new-conversation-role-as-{kind}",
                    text({"action": "send", "role": wrong, "message": "hi"}),
                ),
            ]
        for action in ("stop", "regenerate", "sync", "version"):
            frames.append(
                (
                    f"{action}-conversation-as-{kind}",
                    text({"action": action, "conversation": wrong, "reply": "1"}),
                )
            )
    return frames


async def ws_connect(user, path: str) -> WebsocketCommunicator:
    cookie = await sync_to_async(session_cookie_for)(user)
    headers = [(b"origin", b"http://localhost"), (b"cookie", cookie.encode())]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    assert connected, code
    return communicator


async def answer_of(communicator: WebsocketCommunicator, within: float = 3.0) -> str:
    """The next frame; raises at once what the consumer raised, if it died instead."""
    deadline = asyncio.get_running_loop().time() + within
    while await communicator.receive_nothing(timeout=0.02, interval=0.01):
        if communicator.future.done():
            communicator.future.result()
            raise ConnectionError("the consumer ended")
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("no answer")
    return str(await communicator.receive_from())


def _innermost(formatted: str, lines: int = 8) -> str:
    """The end of a traceback: where the application raised, and what."""
    return "\n    ".join(["", *formatted.rstrip().splitlines()[-lines:]])


def _describe(frame: dict[str, Any]) -> str:
    return repr(frame.get("text_data", frame.get("bytes_data")))[:120]


@pytest.mark.parametrize("route", websocket_routes(), ids=str)
async def test_malformed_socket_frames_get_an_error_and_the_socket_stays_usable(
    route, alice, builtin_roles, fake_openai, fuzz_setup
):
    conversation, _raw_token = fuzz_setup
    pk = str(conversation.pk)
    path = route.url(pk)
    problems: list[str] = []
    communicator = await ws_connect(alice, path)
    after = await asnapshot()
    try:
        for name, frame in frame_corpus(pk):
            before = after
            try:
                await communicator.send_to(**frame)
                answer = await answer_of(communicator)
            except Exception:
                problems.append(
                    f"[{name}] {_describe(frame)}: the socket died: {_innermost(traceback.format_exc())}"
                )
                with contextlib.suppress(Exception):
                    await communicator.disconnect()
                communicator = await ws_connect(alice, path)
                after = await asnapshot()
                continue
            after = await asnapshot()
            if 'id="composer-error"' not in answer:
                problems.append(f"[{name}] {_describe(frame)}: answered without an error: {answer[:200]!r}")
            if before != after:
                problems.append(f"[{name}] {_describe(frame)}: changed the database: {diff(before, after)}")
                # Whatever it started must finish before the next frame is judged.
                with contextlib.suppress(Exception):
                    await frames_until(communicator, r"status-(complete|error|interrupted)", within=10)
                after = await asnapshot()
            # Anything else it sent (it should have sent nothing more) is not the next frame's answer.
            while not await communicator.receive_nothing(timeout=0.05):
                await communicator.receive_from()
        try:
            await communicator.send_to(text_data=json.dumps({"action": "send", "message": "still here"}))
            usable = await frames_until(communicator, r"msg-assistant status-complete")
            if "Echo: still here" not in usable[-1]:
                problems.append(f"the socket no longer chats: {usable[-1][:200]!r}")
        except Exception:
            problems.append(f"the socket no longer chats:\n{traceback.format_exc()}")
    finally:
        with contextlib.suppress(Exception):
            await communicator.disconnect()

    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
