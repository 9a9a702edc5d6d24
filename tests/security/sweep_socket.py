"""The socket half of the isolation sweep (tests/security/sweep.py): every action the
consumer dispatches on, with the victim's identifiers in every frame field."""

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from conversations import generation
from conversations.routing import websocket_urlpatterns
from conversations.sending import message_send
from tests.conftest import session_cookie_for
from tests.security.routes import (
    DISPATCH_FIELDS,
    SOCKET_ACTIONS,
    SOCKET_PATH_PARAMS,
    Own,
    Param,
    Route,
    Text,
)
from tests.security.sweep import (
    ID_NAMES,
    QUIET_WINDOW,
    SENTINEL,
    STREAM_WITHIN,
    UNKNOWN_ACTION,
    Finding,
    is_error_frame,
    param_value,
    settle,
)
from tests.security.sweep_source import action_candidates, actions_in_source, frame_fields_in_source
from tests.security.victims import Thing, World, marker, state_change

acookie = sync_to_async(session_cookie_for)


async def open_socket(application: Any, user: Any, path: str) -> tuple[WebsocketCommunicator, bool, Any]:
    headers = [(b"origin", b"http://localhost")]
    if user is not None:
        headers.append((b"cookie", (await acookie(user)).encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


class Socket:
    """A connected socket that tells the answer to one frame from what comes after."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.sentinel_answer = ""
        self.late: list[str] = []

    async def start(self) -> "Socket":
        self.late += await self.listen()  # a page that connects mid-reply is sent the reply so far
        await self.communicator.send_to(text_data=SENTINEL)
        self.sentinel_answer = await self.communicator.receive_from(timeout=5)
        return self

    async def ask(self, frame: str) -> list[str]:
        """The frames the consumer sends in answer to `frame` (it handles one frame at a time)."""
        await self.communicator.send_to(text_data=frame)
        await self.communicator.send_to(text_data=SENTINEL)
        answer = []
        while (received := await self.communicator.receive_from(timeout=5)) != self.sentinel_answer:
            answer.append(received)
        return answer

    async def listen(self, window: float = QUIET_WINDOW) -> list[str]:
        """The frames that come within `window` of each other (a timeout would end the socket)."""
        frames = []
        while not await self.communicator.receive_nothing(timeout=window):
            frames.append(await self.communicator.receive_from(timeout=5))
        return frames


async def frames_for(
    action: str | None, fields: Mapping[str, Param], all_fields: Sequence[str], thing: Thing, world: World
) -> list[tuple[dict[str, Any], bool, str]]:
    """(frame, whether a declared field carries the victim's object of its kind, variant) to send."""
    head = {} if action is None else {"action": action}
    every = {**head, **dict.fromkeys(all_fields, thing.ident)}
    names_something = any(not isinstance(p, Text) for p in fields.values())
    frames = [(every, names_something, "the victim's id in every field")]
    matching = [name for name, p in fields.items() if isinstance(p, str) and thing.is_a(p)]
    if action is None or not matching:
        return frames
    filled: dict[str, Any] = {}
    bare: dict[str, Any] = {}
    for name in all_fields:
        value, _named = await param_value(fields.get(name), thing, world)
        filled[name] = value
        param = fields.get(name)
        if not (isinstance(param, str) and not thing.is_a(param)):
            bare[name] = value
    frames.append(({**head, **filled}, True, "the victim's id where its kind goes, the attacker's elsewhere"))
    if bare != filled:
        frames.append(({**head, **bare}, True, "the victim's id where its kind goes, nothing elsewhere"))
    return frames


async def socket_findings(
    application: Any,
    route: Route,
    world: World,
    consumer: type,
    actions: Mapping[str, Mapping[str, Param]] = SOCKET_ACTIONS,
) -> list[Finding]:
    """Everything wrong with one socket route: a handshake on the victim's objects, and every
    action from the attacker's socket with the victim's ids in every field."""
    where = f"socket {route.route}"
    findings: list[Finding] = []
    for name in route.kwargs:
        if name not in SOCKET_PATH_PARAMS:
            findings.append(Finding(where, f"path parameter {name!r} is not declared"))
    before = await world.state()

    # The handshake, on each of the victim's objects the route's converter takes.
    if route.kwargs:
        for thing in world.victims:
            url = route.url(str(thing.ident))
            if not _ws_resolves(url):
                continue
            for user, who in [(world.attacker, "the attacker"), (None, "signed out")]:
                communicator, connected, _code = await open_socket(application, user, url)
                if connected:
                    frames = await Socket(communicator).listen()
                    await communicator.disconnect()
                    leaks = world.leaks_in("".join(frames).encode())
                    findings.append(
                        Finding(where, f"accepted {who} on the victim's {thing}, leaking {leaks}")
                    )

    # Every action, from the attacker's own socket (on his own conversation when the route names one).
    own_conversation = await world.own_thing("conversation")
    path = route.url(str(own_conversation.ident)) if route.kwargs else route.url("")
    communicator, connected, _code = await open_socket(application, None, path)
    if connected:
        await communicator.disconnect()
        findings.append(Finding(where, "accepted a socket signed out"))
    communicator, connected, _code = await open_socket(application, world.attacker, path)
    if not connected:
        return [*findings, Finding(where, "refused the attacker's socket on his own conversation")]
    socket = await Socket(communicator).start()
    declared_fields = {name for fields in actions.values() for name in fields}
    all_fields = sorted({*ID_NAMES, *frame_fields_in_source(consumer), *declared_fields} - DISPATCH_FIELDS)
    for action in [*actions, None]:
        # A frame with no action is dispatched as some action: any field may be read.
        fields = (
            actions[action] if action is not None else {k: v for a in actions.values() for k, v in a.items()}
        )
        label = f"action {action!r}" if action is not None else "a frame with no action"
        for thing in world.victims:
            for frame, must_refuse, variant in await frames_for(action, fields, all_fields, thing, world):
                request = f"{label}, {variant}, with the victim's {thing}"
                try:
                    answer = await socket.ask(json.dumps(frame))
                except Exception as exc:  # the consumer raised, or stopped answering
                    return [*findings, Finding(where, f"the socket died: {exc!r}", request)]
                leaks = world.leaks_in("\n".join(answer).encode())
                if leaks:
                    findings.append(Finding(where, f"shows the victim's {', '.join(leaks)}", request))
                if must_refuse and not all(is_error_frame(f) for f in answer):
                    first = next(f for f in answer if not is_error_frame(f))
                    findings.append(Finding(where, f"answered more than an error: {first[:200]!r}", request))
        await settle(world)
        if (after := await world.state()) != before:
            change = state_change(before, after)
            findings.append(Finding(where, f"{label} changed the victim's data ({change})"))
            before = after

    # The victim writes on in her conversation: nothing of it reaches the attacker's socket
    # (it never joined her conversation's group).
    quiet = next(
        t for t in world.victims if t.kind == "conversation" and t.obj.pk != world.busy_conversation_id
    )
    exchange = await message_send(
        owner=world.victim, conversation_id=quiet.obj.pk, content=marker(world.markers, "later message")
    )
    await asyncio.wait_for(generation.wait(exchange.reply.pk), STREAM_WITHIN)
    late = socket.late + await socket.listen()
    leaks = world.leaks_in("\n".join(late).encode())
    if leaks:
        findings.append(Finding(where, f"sent the victim's {', '.join(leaks)} later"))

    # A control: the same socket acts on the attacker's own objects, or every refusal
    # above proves nothing.
    served = False
    for action, fields in actions.items():
        own_frame: dict[str, Any] = {"action": action}
        for name, param in fields.items():
            if isinstance(param, Text):
                own_frame[name] = param.value
            else:
                kind = param.kind if isinstance(param, Own) else param
                own_frame[name] = (await world.own_thing(kind)).ident
        served |= any(not is_error_frame(f) for f in await socket.ask(json.dumps(own_frame)))
    if not served:
        findings.append(Finding(where, "refused every action on the attacker's own objects too"))
    await settle(world)
    await communicator.disconnect()
    return findings


def _ws_resolves(url: str) -> bool:
    return any(pattern.pattern.match(url.lstrip("/")) for pattern in websocket_urlpatterns)


async def action_findings(
    application: Any, world: World, consumer: type, actions: Iterable[str]
) -> list[Finding]:
    """Whether the declared actions are exactly the ones the consumer dispatches on.

    Every candidate name is sent to a real socket: the consumer answers an unknown one with
    its "Unknown action." error, and must answer every declared one otherwise.
    """
    declared = set(actions)
    where = "socket actions"
    findings = [
        Finding(where, f"the consumer's source dispatches on {name!r}, which is not declared")
        for name in sorted(actions_in_source(consumer) - declared)
    ]
    declared_fields = {name for fields in SOCKET_ACTIONS.values() for name in fields}
    for name in sorted(frame_fields_in_source(consumer) - DISPATCH_FIELDS - declared_fields):
        findings.append(Finding(where, f"the consumer reads the frame field {name!r}, no action declares it"))
    communicator, connected, _code = await open_socket(application, world.attacker, "/ws/chat/")
    assert connected
    socket = await Socket(communicator).start()
    unknown = await socket.ask(json.dumps({"action": "zz-no-such-action-zz"}))
    if len(unknown) != 1 or UNKNOWN_ACTION not in unknown[0]:
        findings.append(Finding(where, f"an unknown action was not answered {UNKNOWN_ACTION!r}: {unknown!r}"))
    for name in sorted(action_candidates(consumer) | declared):
        answer = await socket.ask(json.dumps({"action": name}))
        dispatched = answer != unknown
        if dispatched and name not in declared:
            findings.append(
                Finding(where, f"the consumer dispatches {name!r}, not declared: {answer!r}"[:300])
            )
        if not dispatched and name in declared:
            findings.append(Finding(where, f"{name!r} is declared, but the consumer does not know it"))
    await settle(world)
    await communicator.disconnect()
    return findings
