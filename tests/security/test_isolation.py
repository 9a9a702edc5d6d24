"""Bob reaches nothing of Alice's, on any route, socket or action; nobody sees the provider's secrets."""

import inspect
import json
import re
import uuid
from urllib.parse import urlencode, urlsplit

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient, Client

from chatsite.asgi import application
from conversations import generation
from conversations.consumers import ChatConsumer
from conversations.models import Conversation, Message
from conversations.selectors import turn_versions
from conversations.services import api_token_create, conversation_create, message_send
from roles.models import Role
from tests.conftest import frames_until, session_cookie_for, wait_for_reply
from tests.fake_openai import FakeOpenAI, Reply
from tests.security.routes import (
    CONVERSATION_IN_PARAMS,
    CONVERSATION_IN_PATH,
    ID_KWARGS,
    METHODS,
    NOT_FOUND_ROUTES,
    SWEPT_METHODS,
    WEBSOCKET_ROUTES,
    http_routes,
    websocket_routes,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_password_hashing")]

ALICE_TITLE = "Alice-title-7d1e"
ALICE_QUESTION = "Alice-question-5b20"
ALICE_ANSWER = "Alice-answer-c4a9"

acreate = sync_to_async(conversation_create)
acookie = sync_to_async(session_cookie_for)


def token_for(user) -> str:
    _token, raw = api_token_create(user=user, name="test")
    return raw


@pytest.fixture
def alice_conversation(alice, builtin_roles) -> Conversation:
    conversation = conversation_create(owner=alice, role_slug="teacher", title=ALICE_TITLE)
    Message.objects.create(conversation=conversation, author="user", content=ALICE_QUESTION)
    Message.objects.create(conversation=conversation, author="assistant", content=ALICE_ANSWER)
    return conversation


def alices_data_in(text: str, conversation: Conversation) -> list[str]:
    alices = [str(conversation.pk), conversation.pk.hex, ALICE_TITLE, ALICE_QUESTION, ALICE_ANSWER, "alice"]
    return [value for value in alices if value in text]


def state_of(conversation: Conversation) -> tuple[object, ...]:
    """Everything a request could change about a conversation."""
    row = Conversation.objects.get(pk=conversation.pk)
    messages = list(row.messages.order_by("id").values_list("author", "content", "status", "superseded"))
    return row.title, row.role_id, row.updated_at, messages


def body_of(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


# --- The routes swept ------------------------------------------------------------


def test_every_http_route_is_known_to_the_sweep():
    assert {route.name for route in http_routes()} == set(METHODS)


def test_the_http_routes_naming_a_conversation_in_their_path_are_known():
    named = {route.name for route in http_routes() if route.kwargs & ID_KWARGS}

    assert named == CONVERSATION_IN_PATH


def test_every_websocket_route_is_known():
    assert {route.route for route in websocket_routes()} == WEBSOCKET_ROUTES


# --- HTTP: every route, every method, as Bob, with Alice's conversation id --------------

SWEEP = [
    (route, method, auth)
    for route in http_routes()
    for method in SWEPT_METHODS
    for auth in (("cookie", "bearer") if route.api else ("cookie",))
]


def status_is_expected(route_name: str, method: str, status: int) -> bool:
    accepted = method in METHODS[route_name]
    if route_name in CONVERSATION_IN_PATH | CONVERSATION_IN_PARAMS | NOT_FOUND_ROUTES:
        return status == (404 if accepted else 405)
    if not accepted:
        return status in {302, 405}  # the login page sends a signed-in user on first
    return True  # Bob's own page, list or conversation: any status, none of Alice's data


def bobs_request(
    client: Client, route, method: str, url: str, params: dict[str, str], headers: dict[str, str]
):
    # Only the API reads the query string; a page would just echo Bob's own URL back
    # (the language form's `next`), which is no leak.
    query = f"{url}?{urlencode(params)}" if route.api else url
    if method == "POST":
        return client.post(query, params, headers=headers)
    return client.generic(method, query, headers=headers)


@pytest.mark.parametrize(("route", "method", "auth"), SWEEP, ids=lambda v: str(v))
def test_bob_gets_nothing_of_alices_conversation_from_any_route(route, method, auth, bob, alice_conversation):
    before = state_of(alice_conversation)
    alice_id = str(alice_conversation.pk)
    client = Client()
    headers = {}
    if auth == "cookie":
        client.force_login(bob)
    else:
        headers["Authorization"] = f"Bearer {token_for(bob)}"
    params = {"session_id": alice_id, "conversation": alice_id, "message": "x", "title": "Bob was here"}

    response = bobs_request(client, route, method, route.url(alice_id), params, headers)

    body = body_of(response)
    assert status_is_expected(route.name, method, response.status_code), (response.status_code, body[:300])
    assert alices_data_in(body, alice_conversation) == []
    assert state_of(alice_conversation) == before


API_SWEEP = [
    (route, method) for route in http_routes() if route.api for method in sorted(METHODS[route.name])
]


@pytest.mark.parametrize(("route", "method"), API_SWEEP, ids=lambda v: str(v))
def test_a_legacy_user_id_naming_alice_gets_bob_nothing(route, method, alice, bob, alice_conversation):
    before = state_of(alice_conversation)
    params = {"user_id": str(alice.pk), "message": "x"}

    response = bobs_request(
        Client(), route, method, route.url("x"), params, {"Authorization": f"Bearer {token_for(bob)}"}
    )

    assert response.status_code == 404
    assert alices_data_in(body_of(response), alice_conversation) == []
    assert state_of(alice_conversation) == before


# --- WebSockets ------------------------------------------------------------------------


async def connect(user, path: str) -> tuple[WebsocketCommunicator, bool, int | None]:
    headers = [(b"origin", b"http://localhost"), (b"cookie", (await acookie(user)).encode())]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code


CONVERSATION_SOCKETS = [route for route in websocket_routes() if route.kwargs & ID_KWARGS]


@pytest.mark.parametrize("route", CONVERSATION_SOCKETS, ids=lambda r: r.route)
async def test_bob_cannot_open_a_socket_on_alices_conversation(route, bob, alice_conversation):
    _communicator, connected, code = await connect(bob, route.url(str(alice_conversation.pk)))

    assert (connected, code) == (False, 4404)


async def bobs_socket(route, bob) -> tuple[WebsocketCommunicator, Conversation]:
    """Bob's socket on this route: on his own conversation when the route names one."""
    bobs_conversation = await acreate(owner=bob)
    communicator, connected, _ = await connect(bob, route.url(str(bobs_conversation.pk)))
    assert connected
    return communicator, bobs_conversation


def socket_actions() -> set[str]:
    """The actions ChatConsumer.receive() dispatches on, read from its source."""
    source = inspect.getsource(ChatConsumer.receive)
    actions = set(re.findall(r'action == "(\w+)"', source))
    for group in re.findall(r"action in \{([^}]*)\}", source):
        actions |= set(re.findall(r'"(\w+)"', group))
    return actions


SOCKET_ACTIONS = {"send", "stop", "regenerate", "edit", "version", "sync"}


def test_every_socket_action_is_known_to_the_sweep():
    assert socket_actions() == SOCKET_ACTIONS


async def alices_reply(conversation: Conversation) -> Message:
    reply = await conversation.messages.filter(author="assistant").alast()
    assert reply is not None
    return reply


@pytest.mark.parametrize("action", sorted(SOCKET_ACTIONS - {"stop"}))
@pytest.mark.parametrize("route", websocket_routes(), ids=lambda r: r.route)
async def test_acting_on_alices_conversation_from_bobs_socket_is_refused(
    route, action, bob, alice_conversation, fake_openai
):
    before = await sync_to_async(state_of)(alice_conversation)
    reply = await alices_reply(alice_conversation)
    communicator, _ = await bobs_socket(route, bob)

    await communicator.send_to(
        text_data=json.dumps(
            {
                "action": action,
                "conversation": str(alice_conversation.pk),
                "message": "x",
                "reply": str(reply.pk),
            }
        )
    )
    frame = await communicator.receive_from(timeout=5)
    await communicator.disconnect()

    assert 'id="composer-error"' in frame
    assert alices_data_in(frame, alice_conversation) == []
    assert await sync_to_async(state_of)(alice_conversation) == before
    assert await Message.objects.acount() == 2  # Alice's two, nothing new anywhere
    assert fake_openai.requests == []


async def test_choosing_alices_reply_as_a_version_in_bobs_conversation_is_refused(bob, alice_conversation):
    before = await sync_to_async(state_of)(alice_conversation)
    reply = await alices_reply(alice_conversation)
    route = next(r for r in websocket_routes() if r.kwargs)
    communicator, bobs_conversation = await bobs_socket(route, bob)

    await communicator.send_to(
        text_data=json.dumps(
            {"action": "version", "conversation": str(bobs_conversation.pk), "reply": str(reply.pk)}
        )
    )
    frame = await communicator.receive_from(timeout=5)
    await communicator.disconnect()

    assert 'id="composer-error"' in frame
    assert alices_data_in(frame, alice_conversation) == []
    assert await sync_to_async(state_of)(alice_conversation) == before


@pytest.mark.parametrize("route", websocket_routes(), ids=lambda r: r.route)
async def test_stopping_alices_reply_from_bobs_socket_is_refused(
    route, alice, bob, alice_conversation, fake_openai
):
    fake_openai.queue_reply(Reply(tokens=["Alice's", " reply"], hang_after_tokens=1))
    exchange = await message_send(owner=alice, conversation_id=alice_conversation.pk, content="go")
    communicator, _ = await bobs_socket(route, bob)

    await communicator.send_to(
        text_data=json.dumps({"action": "stop", "conversation": str(alice_conversation.pk), "message": "x"})
    )
    frame = await communicator.receive_from(timeout=5)
    await communicator.disconnect()
    fake_openai.release()
    reply = await wait_for_reply(exchange.reply.pk)

    assert 'id="composer-error"' in frame
    assert alices_data_in(frame, alice_conversation) == []
    assert (reply.status, reply.content) == ("complete", "Alice's reply")


# --- No oracle: Alice's conversation, even mid-reply, looks like one that does not exist ---------

ORACLE = [
    (route, method)
    for route in http_routes()
    if route.name in CONVERSATION_IN_PATH | CONVERSATION_IN_PARAMS
    for method in sorted(METHODS[route.name])
]


@pytest.fixture
async def alices_busy_conversation(alice, alice_conversation, fake_openai):
    """Alice's conversation while her reply is being written (its reply slot is held)."""
    fake_openai.queue_reply(Reply(tokens=["Alice's", " reply"], hang_after_tokens=1))
    exchange = await message_send(owner=alice, conversation_id=alice_conversation.pk, content="go")
    yield alice_conversation
    fake_openai.release()
    await wait_for_reply(exchange.reply.pk)


@pytest.mark.parametrize(("route", "method"), ORACLE, ids=lambda v: str(v))
async def test_alices_busy_conversation_answers_bob_like_a_missing_one(
    route, method, bob, alices_busy_conversation
):
    client = AsyncClient()
    await client.aforce_login(bob)
    headers = {"Authorization": f"Bearer {await sync_to_async(token_for)(bob)}"} if route.api else {}

    async def ask(conversation_id: str) -> tuple[int, str]:
        params = {"session_id": conversation_id, "message": "x", "title": "t"}
        url = route.url(conversation_id) + (f"?{urlencode(params)}" if route.api else "")
        response = await client.generic(
            method, url, urlencode(params), content_type="application/x-www-form-urlencoded", headers=headers
        )
        return response.status_code, response.content.decode().replace(conversation_id, "<id>")

    alices = await ask(str(alices_busy_conversation.pk))
    missing = await ask(str(uuid.uuid4()))

    assert alices == missing


@pytest.mark.parametrize("action", sorted(SOCKET_ACTIONS))
async def test_alices_busy_conversation_answers_bobs_socket_like_a_missing_one(
    action, alice, bob, alices_busy_conversation
):
    reply = await alices_reply(alices_busy_conversation)
    communicator, _ = await bobs_socket(websocket_routes()[0], bob)

    async def ask(conversation_id: str) -> str:
        message = {"action": action, "conversation": conversation_id, "message": "x", "reply": str(reply.pk)}
        await communicator.send_to(text_data=json.dumps(message))
        return str(await communicator.receive_from(timeout=5))

    alices = await ask(str(alices_busy_conversation.pk))
    missing = await ask(str(uuid.uuid4()))
    await communicator.disconnect()

    assert alices == missing


# --- Signed out ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "method"), [(r, m) for r in http_routes() for m in SWEPT_METHODS], ids=str)
def test_a_signed_out_caller_gets_nothing_of_alices_conversation(route, method, alice_conversation):
    before = state_of(alice_conversation)
    alice_id = str(alice_conversation.pk)
    params = {"session_id": alice_id, "conversation": alice_id, "message": "x", "title": "Anonymous"}

    response = bobs_request(Client(), route, method, route.url(alice_id), params, {})

    assert alices_data_in(body_of(response), alice_conversation) == []
    assert state_of(alice_conversation) == before
    if route.name in CONVERSATION_IN_PATH | CONVERSATION_IN_PARAMS:
        assert response.status_code in {302, 401, 405}
        assert response.status_code != 302 or response["Location"].startswith("/accounts/login/")


# --- The provider's secrets ----------------------------------------------------------------

KEY_MARKER = "sk-key-marker-3f9b1c"
PROMPT_MARKER = "System-prompt-marker-8e21"
# The frame that replaces a finished reply (a whole-conversation frame also holds finished replies).
FINISHED = r'msg-assistant status-complete" data-status="complete" hx-swap-oob="outerHTML"'


async def secrets_of(fake_openai: FakeOpenAI) -> list[tuple[str, str]]:
    """(text, what it is) of everything only staff and the server may know."""
    secrets = [
        (KEY_MARKER, "API key"),
        (fake_openai.base_url, "base URL"),
        (urlsplit(fake_openai.base_url).netloc, "provider address"),
    ]
    async for role in Role.objects.all():
        secrets.append((role.system_prompt.splitlines()[0], f"system prompt of {role.slug}"))
    return secrets


async def test_a_non_staff_user_never_receives_a_system_prompt_the_api_key_or_the_base_url(
    alice, builtin_roles, fake_openai, settings
):
    settings.OPENAI_API_KEY = KEY_MARKER
    await Role.objects.filter(slug="teacher").aupdate(system_prompt=f"{PROMPT_MARKER}: teach patiently.")
    transcript: list[tuple[str, str]] = []  # (where, what the user received)
    client = AsyncClient()
    await client.aforce_login(alice)
    bearer = {"Authorization": f"Bearer {await sync_to_async(token_for)(alice)}"}

    async def call(method: str, path: str, **kwargs):
        response = await getattr(client, method)(path, **kwargs)
        if response.streaming:
            body = b"".join([part async for part in response.streaming_content]).decode()
        else:
            body = response.content.decode()
        transcript.append((f"{method.upper()} {path}", body))
        return response, body

    for path in ["/", "/accounts/login/", "/accounts/signup/", "/admin/", "/admin/roles/role/", "/chat/x"]:
        await call("get", path)

    # A chat over the socket: a streamed reply, a reply stopped half way (seen live, on
    # the page and by a second tab), and a provider error that echoes the key.
    socket, _, _ = await connect(alice, "/ws/chat/")
    fake_openai.queue_reply(Reply(tokens=["Photo", "synthesis", " makes", " sugar."]))
    await socket.send_to(text_data=json.dumps({"action": "send", "role": "teacher", "message": "Teach me"}))
    frames = await frames_until(socket, r"msg-assistant status-complete")
    conversation = await Conversation.objects.aget(owner=alice)
    pk = str(conversation.pk)
    fake_openai.queue_reply(Reply(tokens=["Half", " of it"], hang_after_tokens=1))
    await socket.send_to(text_data=json.dumps({"action": "send", "conversation": pk, "message": "More"}))
    frames += await frames_until(socket, r"Half")
    await call("get", f"/c/{pk}/")
    second_tab, _, _ = await connect(alice, f"/ws/chat/{pk}/")
    frames.append(await second_tab.receive_from(timeout=5))
    await socket.send_to(text_data=json.dumps({"action": "stop", "conversation": pk}))
    frames += await frames_until(socket, r"status-stopped")
    frames += await frames_until(second_tab, r"status-stopped")
    await second_tab.disconnect()
    fake_openai.queue_reply(
        Reply(
            tokens=[], status=401, error_message=f"Incorrect API key: {KEY_MARKER} at {fake_openai.base_url}"
        )
    )
    await socket.send_to(text_data=json.dumps({"action": "send", "conversation": pk, "message": "Again"}))
    frames += await frames_until(socket, r"status-error")
    # Redoing the last turn sends the whole conversation again.
    await socket.send_to(text_data=json.dumps({"action": "regenerate", "conversation": pk}))
    frames += await frames_until(socket, FINISHED)
    await socket.send_to(text_data=json.dumps({"action": "edit", "conversation": pk, "message": "Edited"}))
    frames += await frames_until(socket, FINISHED)
    versions = await database_sync_to_async(turn_versions)(conversation=conversation)
    assert versions is not None
    await socket.send_to(
        text_data=json.dumps({"action": "version", "conversation": pk, "reply": versions.reply_ids[0]})
    )
    frames.append(await socket.receive_from(timeout=5))
    await socket.send_to(text_data="not json")
    frames.append(await socket.receive_from(timeout=5))
    await socket.disconnect()
    transcript += [("socket frame", frame) for frame in frames]

    await call("post", f"/c/{pk}/rename/", data={"title": "Renamed"}, headers={"HX-Request": "true"})
    await call("get", f"/c/{pk}/")
    await call("get", "/roles", headers=bearer)
    await call("get", "/chat/sessions", headers=bearer)
    await call("get", "/chat/history", data={"session_id": pk}, headers=bearer)
    _, started = await call("post", "/chat/start", data={"role": "teacher"}, headers=bearer)
    api_pk = json.loads(started)["session_id"]
    for reply in [
        Reply(tokens=["Via", " the", " API"]),
        Reply(tokens=[], status=401, error_message=KEY_MARKER),
    ]:
        fake_openai.queue_reply(reply)
        await call("get", "/chat/stream", data={"session_id": api_pk, "message": "hi"}, headers=bearer)
        for reply_id in generation.running_ids():
            await generation.wait(reply_id)
    await call("get", "/chat/history", data={"session_id": api_pk}, headers=bearer)
    await call("delete", f"/chat/session/{api_pk}", headers=bearer)

    # The markers were really in play: the provider got the prompt and the key.
    assert any(PROMPT_MARKER in json.dumps(request.body) for request in fake_openai.requests)
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {KEY_MARKER}"
    secrets = await secrets_of(fake_openai)
    leaks = [(what, where) for where, body in transcript for secret, what in secrets if secret in body]
    assert leaks == []
