"""Nobody reaches anything of another user's, on any route, socket or action; nobody sees the
provider's secrets.

The sweep (tests/security/sweep.py) probes every route the resolvers report and every
action the consumer dispatches on with the victim's real objects of every kind; the
tables it checks against are in tests/security/routes.py, the kinds and their markers
in tests/security/victims.py. The last tests run it over two routes that leak, to show
it catches them.
"""

import json
import uuid
from urllib.parse import urlencode, urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.template.loader import render_to_string
from django.test import AsyncClient

from chatsite.asgi import application
from conversations import generation
from conversations.consumers import ChatConsumer
from conversations.models import Conversation
from conversations.tokens import api_token_create
from roles.models import Role
from tests.conftest import frames_until, wait_for_reply
from tests.fake_openai import FakeOpenAI, Reply
from tests.security import dispatch_samples
from tests.security.leaky_search_urls import LEAKY_SEARCH
from tests.security.leaky_urls import LEAKY_ROUTES
from tests.security.routes import (
    ADMIN_PREFIX,
    ROUTES,
    SEARCH_PROBE,
    SOCKET_ACTIONS,
    WEBSOCKET_ROUTES,
    Declared,
    Own,
    Text,
    all_http_routes,
    declared_for,
    websocket_routes,
)
from tests.security.sweep import Finding, is_error_frame, summary
from tests.security.sweep_http import bookkeeping, http_findings
from tests.security.sweep_socket import Socket, action_findings, open_socket, socket_findings
from tests.security.sweep_source import actions_in_source
from tests.security.victims import World

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_password_hashing")]


async def connect(user, path: str):
    return await open_socket(application, user, path)


def token_for(user) -> str:
    _token, raw = api_token_create(user=user, name="test")
    return raw


# --- The tables the sweep checks against ---------------------------------------------------------


def test_every_http_route_and_every_parameter_it_reads_is_declared():
    findings = [finding for route in all_http_routes() for finding in bookkeeping(route, ROUTES)]

    assert not findings, summary(findings)


def test_every_declared_route_still_exists():
    names = {route.name for route in all_http_routes()}

    assert set(ROUTES) - names == set()


def test_every_websocket_route_is_known():
    assert {route.route for route in websocket_routes()} == WEBSOCKET_ROUTES


def test_every_action_the_consumers_source_dispatches_on_is_declared():
    found = actions_in_source(ChatConsumer)

    assert found, "the scan understood none of ChatConsumer's dispatch: teach actions_in_source how it reads"
    assert found - set(SOCKET_ACTIONS) == set()


@pytest.mark.parametrize(
    ("consumer", "actions"),
    [
        (dispatch_samples.ByTable, {"archive", "pin"}),
        (dispatch_samples.ByMatch, {"share", "export", "import"}),
        (dispatch_samples.ByMethodName, {"rename", "fork"}),
        (dispatch_samples.ByClassTable, {"star", "unstar"}),
    ],
    ids=["table", "match", "method-name", "class-attribute"],
)
def test_the_source_scan_finds_actions_however_they_are_dispatched(consumer, actions):
    assert actions_in_source(consumer) == actions


async def test_the_consumer_dispatches_on_exactly_the_declared_actions(world):
    findings = await action_findings(application, world, ChatConsumer, SOCKET_ACTIONS)

    assert not findings, summary(findings)


# --- HTTP: every route, as the attacker and signed out, with each of the victim's objects --------


def _sweep_groups() -> list[tuple[str, list]]:
    """Each route on its own, and the admin's (Django's, all staff only) together."""
    routes = all_http_routes()
    admin = [route for route in routes if route.route.startswith(ADMIN_PREFIX)]
    return [(route.name, [route]) for route in routes if route not in admin] + [("admin", admin)]


SWEEP_GROUPS = _sweep_groups()


@pytest.mark.parametrize(("group", "routes"), SWEEP_GROUPS, ids=[name for name, _ in SWEEP_GROUPS])
async def test_nobody_gets_anything_of_the_victims_from_any_route(group, routes, world):
    findings = await http_findings(routes, world)

    assert not findings, summary(findings)


# --- WebSockets: every action, from the attacker's socket, with each of the victim's objects -----


@pytest.mark.parametrize("route", websocket_routes(), ids=lambda r: r.route)
async def test_nobody_gets_anything_of_the_victims_from_any_socket_action(route, world, fake_openai):
    findings = await socket_findings(application, route, world, ChatConsumer)

    assert not findings, summary(findings)
    # Her reply being written was never stopped: released, it says all it had to say.
    assert world.busy_reply is not None
    fake_openai.release()
    reply = await wait_for_reply(world.busy_reply.pk)
    assert (reply.status, reply.content) == ("complete", world.busy_text)


# --- No oracle: the victim's conversation, even mid-reply, looks like one that does not exist ----

ORACLE = [
    (route, method)
    for route in all_http_routes()
    if (declared := declared_for(route, ROUTES)) is not None and "conversation" in declared.params.values()
    for method in sorted(declared.methods)
]


def _busy_conversation(world: World) -> str:
    assert world.busy_reply is not None
    return str(world.busy_reply.conversation_id)


@pytest.mark.parametrize(("route", "method"), ORACLE, ids=lambda v: str(v))
async def test_a_busy_conversation_answers_the_attacker_like_a_missing_one(route, method, world):
    declared = ROUTES[route.name]
    client = AsyncClient()
    await client.aforce_login(world.attacker)
    headers = {"Authorization": f"Bearer {world.attacker_token}"} if declared.api else {}

    async def ask(conversation_id: str) -> tuple[int, str]:
        params = {
            name: param.value if isinstance(param, Text) else conversation_id
            for name, param in declared.params.items()
            if name not in route.kwargs and param != "user"
        }
        url = route.url(conversation_id) + (f"?{urlencode(params)}" if declared.api else "")
        response = await client.generic(
            method, url, urlencode(params), content_type="application/x-www-form-urlencoded", headers=headers
        )
        return response.status_code, response.content.decode().replace(conversation_id, "<id>")

    victims = await ask(_busy_conversation(world))
    missing = await ask(str(uuid.uuid4()))

    assert victims == missing


@pytest.mark.parametrize("action", sorted(SOCKET_ACTIONS))
async def test_a_busy_conversation_answers_the_attackers_socket_like_a_missing_one(action, world):
    assert world.busy_reply is not None
    communicator, connected, _code = await open_socket(application, world.attacker, "/ws/chat/")
    assert connected
    socket = await Socket(communicator).start()

    async def ask(conversation_id: str) -> list[str]:
        reply = world.busy_reply.pk if world.busy_reply else None
        frame = {"action": action, "conversation": conversation_id, "message": "x", "reply": reply}
        return await socket.ask(json.dumps(frame))

    victims = await ask(_busy_conversation(world))
    missing = await ask(str(uuid.uuid4()))
    await communicator.disconnect()

    assert victims == missing


# --- The sweep itself: two routes that leak are caught ---------------------------------------------

# The two routes as a reviewer would declare them: declaring a leak must not hide it.
LEAKS_DECLARED = {
    **ROUTES,
    "export/": Declared(frozenset({"GET"}), {"conversation": "conversation"}),
    "m/<int:message_id>/": Declared(frozenset({"GET"}), {"message_id": "message"}),
    "shared/<str:token>/": Declared(frozenset({"GET"}), {"token": Own("share_token")}, public=True),
}


def _leaks(findings: list[Finding], route: str) -> list[Finding]:
    return [f for f in findings if f.route == route and f.problem.startswith("shows the victim's")]


def test_only_the_error_frame_counts_as_a_refusal():
    # A frame that re-renders the composer holds its empty error line: that is an answer.
    refusal = render_to_string("chat/frames/error.html", {"text": "This conversation does not exist."})
    composer = '<form></form><p id="composer-error" class="composer-error" role="alert"></p>'

    assert (is_error_frame(refusal), is_error_frame(composer)) == (True, False)


def test_the_sweep_reads_from_a_views_source_what_it_must_be_told(settings):
    settings.ROOT_URLCONF = "tests.security.leaky_urls"
    export = next(route for route in all_http_routes() if route.route == "export/")

    findings = bookkeeping(export, {"export/": Declared(frozenset({"GET"}))})

    assert [f.problem for f in findings] == ["the view reads 'conversation', which is not declared"]


async def test_the_sweep_catches_an_unprotected_export_and_message_route(world, settings):
    settings.ROOT_URLCONF = "tests.security.leaky_urls"  # the site's URLconf and the two leaky routes
    routes = all_http_routes()
    leaky = [route for route in routes if route.route in LEAKY_ROUTES]
    assert len(leaky) == 3

    undeclared = await http_findings(routes, world)
    declared = await http_findings(leaky, world, LEAKS_DECLARED)

    print("\nThe leaky URLconf, the three routes undeclared:\n" + summary(undeclared))
    print("The three routes declared as a reviewer would:\n" + summary(declared))
    for route in LEAKY_ROUTES:
        assert _leaks(undeclared, route), route
        assert any("not declared" in f.problem for f in undeclared if f.route == route)
        assert _leaks(declared, route), route
        assert any("named the victim's object" in f.problem for f in declared if f.route == route)
    assert not [f for f in declared if "declared" in f.problem]
    # Without the three, the URLconf passes: every finding is theirs.
    assert {f.route for f in undeclared} == set(LEAKY_ROUTES)


@pytest.mark.parametrize("path", ["/chat/search", "/chat/sessions", "/search/"])
async def test_the_sweeps_search_words_find_the_victims_data_for_the_victim(path, world):
    """The control: what the sweep searches for as the attacker finds the victim's own."""
    client = AsyncClient()
    await client.aforce_login(world.victim)

    response = await client.get(path, {"q": SEARCH_PROBE}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert world.leaks_in(response.content)


async def test_the_sweep_catches_a_search_that_looks_through_everyones_messages(world, settings):
    settings.ROOT_URLCONF = "tests.security.leaky_search_urls"
    [leaky] = [route for route in all_http_routes() if route.route == LEAKY_SEARCH]
    # Declared as a reviewer would: its `q` names no object, it is only words.
    table = {**ROUTES, LEAKY_SEARCH: Declared(frozenset({"GET"}), {"q": Text(SEARCH_PROBE)})}

    findings = await http_findings([leaky], world, table)

    print("\nThe unscoped search, declared:\n" + summary(findings))
    assert _leaks(findings, LEAKY_SEARCH)


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
    first_reply = await conversation.messages.filter(author="assistant").order_by("id").afirst()
    assert first_reply is not None
    await socket.send_to(
        text_data=json.dumps({"action": "branch", "conversation": pk, "message": first_reply.pk})
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
