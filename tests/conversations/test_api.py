import http.client
import json
import time
import uuid
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client
from django.utils import timezone

from conversations import generation
from conversations.models import Conversation, Message
from conversations.services import conversation_create, reply_stop
from conversations.tokens import api_token_create, api_token_revoke
from roles.builtin import BUILTIN_ROLES
from roles.models import Role
from tests.conftest import make_user, wait_for_reply
from tests.fake_openai import Reply

# The API's views reach the database through channels' database_sync_to_async, which
# closes old connections: that needs real transactions, not a test wrapped in one.
pytestmark = pytest.mark.django_db(transaction=True)

acreate = sync_to_async(conversation_create)
atoken = sync_to_async(api_token_create)


# --- Helpers -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """Users here sign in by force_login or token; a slow hash only slows the suite."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def token_for(user) -> str:
    _token, raw = api_token_create(user=user, name="test")
    return raw


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def sse_events(body: str) -> list[tuple[int, dict]]:
    """The (id, data) of each event in an SSE body."""
    events = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((int(fields["id"]), json.loads(fields["data"])))
    return events


async def read_events(response) -> list[tuple[int, dict]]:
    body = b"".join([part async for part in response.streaming_content]).decode()
    return sse_events(body)


async def stream(client: AsyncClient, conversation, message: str, headers=None, **params):
    """GET /chat/stream to the end; the reply's job has finished when this returns."""
    response = await client.get(
        "/chat/stream",
        {"session_id": str(conversation.pk), "message": message, **params},
        headers=headers,
    )
    assert response.status_code == 200
    events = await read_events(response)
    await generation.wait(events[-1][1]["message_id"])
    return events


@pytest.fixture
def alice_token(alice) -> str:
    return token_for(alice)


@pytest.fixture
def bob_token(bob) -> str:
    return token_for(bob)


@pytest.fixture
def alice_client(client, alice, builtin_roles):
    client.force_login(alice)
    return client


@pytest.fixture
def alice_conversation(alice, builtin_roles) -> Conversation:
    conversation = conversation_create(owner=alice, role_slug="teacher", title="Alice's secret plans")
    Message.objects.create(conversation=conversation, author="user", content="Alice's private question")
    Message.objects.create(conversation=conversation, author="assistant", content="Alice's private answer")
    return conversation


def assert_nothing_of_alices(response, conversation: Conversation) -> None:
    body = response.content.decode()
    assert str(conversation.pk) not in body
    assert "Alice" not in body


# --- POST /chat/start ----------------------------------------------------------


def test_start_with_a_token_creates_a_conversation_for_the_caller(client, alice, alice_token, builtin_roles):
    response = client.post("/chat/start", headers=bearer(alice_token))

    assert response.status_code == 201
    data = response.json()
    assert set(data) == {"session_id", "role", "title", "created_at"}
    conversation = Conversation.objects.get(pk=data["session_id"])
    assert conversation.owner == alice
    assert data["role"] == "assistant"


def test_start_with_the_session_cookie_creates_a_conversation(alice_client, alice):
    response = alice_client.post("/chat/start")

    assert response.status_code == 201
    assert Conversation.objects.get(pk=response.json()["session_id"]).owner == alice


def test_start_reads_role_and_title_from_a_json_body(client, alice_token, builtin_roles):
    response = client.post(
        "/chat/start",
        {"role": "teacher", "title": "Physics"},
        content_type="application/json",
        headers=bearer(alice_token),
    )

    assert response.status_code == 201
    assert (response.json()["role"], response.json()["title"]) == ("teacher", "Physics")


def test_start_reads_role_and_title_from_a_form(client, alice_token, builtin_roles):
    response = client.post(
        "/chat/start", {"role": "programmer", "title": "Rust"}, headers=bearer(alice_token)
    )

    assert (response.json()["role"], response.json()["title"]) == ("programmer", "Rust")


def test_start_reads_role_and_title_from_the_query_string(client, alice_token, builtin_roles):
    response = client.post("/chat/start?role=teacher&title=Maths", headers=bearer(alice_token))

    assert (response.json()["role"], response.json()["title"]) == ("teacher", "Maths")


def test_start_with_an_unknown_role_is_a_400(client, alice_token, builtin_roles):
    response = client.post("/chat/start", {"role": "wizard"}, headers=bearer(alice_token))

    assert error_of(response) == (400, "unknown_role")
    assert not Conversation.objects.exists()


@pytest.mark.parametrize("body", ["{not json", "[1, 2]"])
def test_start_with_a_malformed_json_body_is_a_400(client, alice_token, builtin_roles, body):
    response = client.post("/chat/start", body, content_type="application/json", headers=bearer(alice_token))

    assert error_of(response) == (400, "invalid_json")
    assert not Conversation.objects.exists()


# --- GET/POST /chat/stream -------------------------------------------------------


async def test_stream_with_a_token_sends_the_chunks_in_order_then_end(alice, builtin_roles, fake_openai):
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["Two", " plus", " two", " is", " four."], delay=0.02))

    events = await stream(AsyncClient(), conversation, "2+2?", headers=bearer(raw))

    *chunks, (_last_id, end) = events
    assert [data["type"] for _id, data in chunks] == ["chunk"] * len(chunks)
    assert "".join(data["content"] for _id, data in chunks) == "Two plus two is four."
    assert end["type"] == "end"


async def test_stream_event_ids_are_strictly_increasing_integers(alice, builtin_roles, fake_openai):
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["a", "b", "c", "d"], delay=0.02))

    events = await stream(AsyncClient(), conversation, "Hi", headers=bearer(raw))

    ids = [event_id for event_id, _data in events]
    assert len(ids) >= 2
    assert ids == sorted(set(ids))


async def test_stream_end_event_names_the_session_and_the_saved_reply(alice, builtin_roles, fake_openai):
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice)

    events = await stream(AsyncClient(), conversation, "Hello", headers=bearer(raw))

    end = events[-1][1]
    reply = await Message.objects.aget(conversation=conversation, author="assistant")
    assert end == {
        "type": "end",
        "status": "complete",
        "session_id": str(conversation.pk),
        "message_id": reply.pk,
    }


async def test_the_streamed_text_is_the_reply_saved_in_the_database(alice, builtin_roles, fake_openai):
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["Saved", " as", " streamed"]))

    events = await stream(AsyncClient(), conversation, "Hi", headers=bearer(raw))

    streamed = "".join(data["content"] for _id, data in events if data["type"] == "chunk")
    reply = await Message.objects.aget(pk=events[-1][1]["message_id"])
    assert reply.content == streamed == "Saved as streamed"
    assert reply.status == Message.Status.COMPLETE


async def test_stream_answers_with_event_stream_headers(alice, builtin_roles, fake_openai):
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice)

    response = await AsyncClient().get(
        "/chat/stream", {"session_id": str(conversation.pk), "message": "Hi"}, headers=bearer(raw)
    )
    events = await read_events(response)
    await generation.wait(events[-1][1]["message_id"])

    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache"


async def test_stream_by_post_with_the_session_cookie_streams_the_reply(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["By", " cookie"]))
    client = AsyncClient()
    await client.aforce_login(alice)

    response = await client.post(
        "/chat/stream",
        {"session_id": str(conversation.pk), "message": "Hi"},
        content_type="application/json",
    )
    events = await read_events(response)
    await generation.wait(events[-1][1]["message_id"])

    assert response.status_code == 200
    assert "".join(data["content"] for _id, data in events[:-1]) == "By cookie"
    assert events[-1][1]["type"] == "end"


async def test_stream_sends_the_roles_system_prompt_upstream(alice, builtin_roles, fake_openai):
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice)
    teacher = await Role.objects.aget(slug="teacher")

    await stream(AsyncClient(), conversation, "Explain gravity", role="teacher", headers=bearer(raw))

    assert fake_openai.last_messages()[0] == {"role": "system", "content": teacher.system_prompt}
    assert fake_openai.last_messages()[-1] == {"role": "user", "content": "Explain gravity"}


async def test_an_upstream_error_ends_the_stream_with_a_readable_error_event(
    alice, builtin_roles, fake_openai
):
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=[], status=500))
    fake_openai.queue_reply(Reply(tokens=[], status=500))

    response = await AsyncClient().get(
        "/chat/stream", {"session_id": str(conversation.pk), "message": "Hi"}, headers=bearer(raw)
    )
    events = await read_events(response)
    reply = await Message.objects.aget(conversation=conversation, author="assistant")
    await generation.wait(reply.pk)

    assert [data["type"] for _id, data in events] == ["error"]
    error = events[0][1]
    assert error["status"] == "error"
    assert "HTTP 500" in error["content"]
    assert error["content"] == reply.error


async def test_a_second_stream_while_a_reply_runs_is_a_409(alice, builtin_roles, fake_openai):
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["a"], hang_after_tokens=1))
    client = AsyncClient()
    params = {"session_id": str(conversation.pk), "message": "one"}
    first = await client.get("/chat/stream", params, headers=bearer(raw))
    reply = await Message.objects.aget(conversation=conversation, author="assistant")

    second = await client.get("/chat/stream", {**params, "message": "two"}, headers=bearer(raw))

    await reply_stop(owner=alice, conversation_id=conversation.pk)
    await read_events(first)
    await wait_for_reply(reply.pk)
    await generation.wait(reply.pk)
    assert error_of(second) == (409, "reply_in_progress")
    assert await Message.objects.filter(conversation=conversation).acount() == 2


async def test_stream_without_a_session_id_is_a_400(alice, builtin_roles):
    raw = (await atoken(user=alice))[1]

    response = await AsyncClient().get("/chat/stream", {"message": "Hi"}, headers=bearer(raw))

    assert error_of(response) == (400, "missing_parameter")


@pytest.mark.parametrize("session_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_stream_to_an_unknown_or_malformed_session_is_a_404(alice, builtin_roles, session_id):
    raw = (await atoken(user=alice))[1]

    response = await AsyncClient().get(
        "/chat/stream", {"session_id": session_id, "message": "Hi"}, headers=bearer(raw)
    )

    assert error_of(response) == (404, "not_found")
    assert await Message.objects.acount() == 0


@pytest.mark.parametrize("message", ["", "   \n "])
async def test_stream_with_an_empty_message_is_a_400(alice, builtin_roles, message):
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice)

    response = await AsyncClient().get(
        "/chat/stream", {"session_id": str(conversation.pk), "message": message}, headers=bearer(raw)
    )

    assert error_of(response) == (400, "empty_message")
    assert await Message.objects.acount() == 0


async def test_stream_with_an_over_long_message_is_a_413(alice, builtin_roles, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice)

    response = await AsyncClient().get(
        "/chat/stream", {"session_id": str(conversation.pk), "message": "x" * 11}, headers=bearer(raw)
    )

    assert error_of(response) == (413, "message_too_long")
    assert await Message.objects.acount() == 0


async def test_stream_with_an_unknown_role_is_a_400_and_saves_nothing(alice, builtin_roles):
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice)

    response = await AsyncClient().get(
        "/chat/stream",
        {"session_id": str(conversation.pk), "message": "Hi", "role": "wizard"},
        headers=bearer(raw),
    )

    assert error_of(response) == (400, "unknown_role")
    assert await Message.objects.acount() == 0


async def test_stream_naming_another_role_for_a_started_conversation_is_a_400(
    alice, builtin_roles, fake_openai
):
    raw = (await atoken(user=alice))[1]
    conversation = await acreate(owner=alice, role_slug="assistant")
    await stream(AsyncClient(), conversation, "First", headers=bearer(raw))

    response = await AsyncClient().get(
        "/chat/stream",
        {"session_id": str(conversation.pk), "message": "Second", "role": "teacher"},
        headers=bearer(raw),
    )

    assert error_of(response) == (400, "role_mismatch")
    assert await Message.objects.filter(conversation=conversation).acount() == 2


async def test_stream_with_a_malformed_json_body_is_a_400(alice, builtin_roles):
    raw = (await atoken(user=alice))[1]

    response = await AsyncClient().post(
        "/chat/stream", "{not json", content_type="application/json", headers=bearer(raw)
    )

    assert error_of(response) == (400, "invalid_json")


# --- GET /chat/history -------------------------------------------------------------


def test_history_with_a_token_lists_the_messages_in_order(client, alice_token, alice_conversation):
    response = client.get(
        "/chat/history", {"session_id": str(alice_conversation.pk)}, headers=bearer(alice_token)
    )

    assert response.status_code == 200
    data = response.json()
    assert (data["session_id"], data["title"], data["role"]) == (
        str(alice_conversation.pk),
        "Alice's secret plans",
        "teacher",
    )
    assert [(m["author"], m["role"], m["content"]) for m in data["messages"]] == [
        ("user", "user", "Alice's private question"),
        ("assistant", "assistant", "Alice's private answer"),
    ]


def test_history_messages_carry_their_status_error_and_times(client, alice_token, alice_conversation):
    response = client.get(
        "/chat/history", {"session_id": str(alice_conversation.pk)}, headers=bearer(alice_token)
    )

    message = response.json()["messages"][0]
    assert set(message) == {
        "id", "parent_id", "author", "role", "content", "reasoning", "reasoning_ms", "status", "error",
        "created_at", "updated_at", "usage", "feedback", "images",
    }  # fmt: skip
    assert (message["status"], message["error"]) == ("complete", "")


def test_history_gives_each_reply_its_cost_and_a_users_message_none(client, alice_token, alice_conversation):
    alice_conversation.messages.filter(author="assistant").update(
        prompt_tokens=30, completion_tokens=7, first_token_ms=350
    )

    response = client.get(
        "/chat/history", {"session_id": str(alice_conversation.pk)}, headers=bearer(alice_token)
    )

    question, answer = response.json()["messages"]
    assert question["usage"] is None
    assert answer["usage"] == {"prompt_tokens": 30, "completion_tokens": 7, "first_token_ms": 350}


def _two_versions(conversation: Conversation) -> tuple[Message, Message, Message]:
    """A question, its first reply set aside, and the second reply shown."""
    question = conversation.messages.get(author="user")
    first = conversation.messages.get(author="assistant")
    first.parent = first.reply_to = question
    first.superseded = True
    first.save()
    second = Message.objects.create(
        conversation=conversation, author="assistant", content="Second", parent=question, reply_to=question
    )
    return question, first, second


def test_history_is_the_branch_shown_each_message_naming_the_one_it_follows(
    client, alice_token, alice_conversation
):
    question, _first, second = _two_versions(alice_conversation)

    response = client.get(
        "/chat/history", {"session_id": str(alice_conversation.pk)}, headers=bearer(alice_token)
    )

    listed = [(m["id"], m["parent_id"]) for m in response.json()["messages"]]
    assert listed == [(question.pk, None), (second.pk, question.pk)]


@pytest.mark.parametrize("tree", ["1", "true"])
def test_history_with_tree_is_every_branch_with_children_and_what_is_shown(
    client, alice_token, alice_conversation, tree
):
    question, first, second = _two_versions(alice_conversation)

    response = client.get(
        "/chat/history", {"session_id": str(alice_conversation.pk), "tree": tree}, headers=bearer(alice_token)
    )

    listed = [(m["id"], m["parent_id"], m["children"], m["shown"]) for m in response.json()["messages"]]
    assert listed == [
        (question.pk, None, [first.pk, second.pk], True),
        (first.pk, question.pk, [], False),
        (second.pk, question.pk, [], True),
    ]


def test_history_refuses_a_tree_that_is_not_yes_or_no(client, alice_token, alice_conversation):
    response = client.get(
        "/chat/history",
        {"session_id": str(alice_conversation.pk), "tree": "maybe"},
        headers=bearer(alice_token),
    )

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_parameter")


def test_history_with_the_session_cookie(alice_client, alice_conversation):
    response = alice_client.get("/chat/history", {"session_id": str(alice_conversation.pk)})

    assert response.status_code == 200
    assert len(response.json()["messages"]) == 2


def test_history_without_a_session_id_is_a_400(client, alice_token):
    response = client.get("/chat/history", headers=bearer(alice_token))

    assert error_of(response) == (400, "missing_parameter")


@pytest.mark.parametrize("session_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_history_of_an_unknown_or_malformed_session_is_a_404(client, alice_token, session_id):
    response = client.get("/chat/history", {"session_id": session_id}, headers=bearer(alice_token))

    assert error_of(response) == (404, "not_found")


# --- GET /chat/sessions ------------------------------------------------------------


def test_sessions_with_a_token_lists_the_callers_conversations_newest_first(
    client, alice, alice_token, builtin_roles
):
    older = conversation_create(owner=alice, title="Older")
    newer = conversation_create(owner=alice, title="Newer")
    Conversation.objects.filter(pk=older.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    response = client.get("/chat/sessions", headers=bearer(alice_token))

    assert response.status_code == 200
    assert [s["session_id"] for s in response.json()["sessions"]] == [str(newer.pk), str(older.pk)]


def test_sessions_show_each_conversations_last_message(client, alice_token, alice_conversation):
    response = client.get("/chat/sessions", headers=bearer(alice_token))

    (session,) = response.json()["sessions"]
    # The README's shape: these keys (the FastAPI demo's); more may come, none may go.
    assert {"session_id", "title", "role", "last_message", "updated_at"} <= set(session)
    assert (session["title"], session["role"], session["last_message"]) == (
        "Alice's secret plans",
        "teacher",
        "Alice's private answer",
    )


def test_sessions_with_the_session_cookie(alice_client, alice_conversation):
    response = alice_client.get("/chat/sessions")

    assert [s["session_id"] for s in response.json()["sessions"]] == [str(alice_conversation.pk)]


def test_sessions_accept_the_callers_own_user_id(client, alice, alice_token, alice_conversation):
    response = client.get("/chat/sessions", {"user_id": alice.pk}, headers=bearer(alice_token))

    assert response.status_code == 200
    assert len(response.json()["sessions"]) == 1


def conversations_aged(owner, count: int) -> list:
    """`count` conversations, the first the newest, each an hour older than the one before."""
    made = [conversation_create(owner=owner, title=f"c{n}") for n in range(count)]
    for age, conversation in enumerate(made):
        Conversation.objects.filter(pk=conversation.pk).update(
            updated_at=timezone.now() - timedelta(hours=age)
        )
    return [str(c.pk) for c in made]


def test_sessions_come_50_at_a_time_unless_asked(client, alice, alice_token, builtin_roles):
    ids = conversations_aged(alice, 52)

    page = client.get("/chat/sessions", headers=bearer(alice_token)).json()

    assert [s["session_id"] for s in page["sessions"]] == ids[:50]
    assert (page["has_more"], page["next_before"]) == (True, ids[49])


def test_pages_follow_each_other_with_before_until_none_is_left(client, alice, alice_token, builtin_roles):
    ids = conversations_aged(alice, 5)
    seen, before, pages = [], "", 0
    while True:
        query = {"limit": 2, **({"before": before} if before else {})}
        page = client.get("/chat/sessions", query, headers=bearer(alice_token)).json()
        seen += [s["session_id"] for s in page["sessions"]]
        pages += 1
        if not page["has_more"]:
            break
        before = page["next_before"]

    assert seen == ids  # each once, in order
    assert pages == 3 and page["next_before"] is None


def test_conversations_updated_at_the_same_moment_are_each_listed_once(
    client, alice, alice_token, builtin_roles
):
    ids = conversations_aged(alice, 4)
    Conversation.objects.filter(owner=alice).update(updated_at=timezone.now())

    first = client.get("/chat/sessions", {"limit": 2}, headers=bearer(alice_token)).json()
    second = client.get(
        "/chat/sessions", {"limit": 2, "before": first["next_before"]}, headers=bearer(alice_token)
    ).json()

    listed = [s["session_id"] for s in first["sessions"] + second["sessions"]]
    assert sorted(listed) == sorted(ids)


@pytest.mark.parametrize("limit", ["0", "201", "ten", "-1", "2.5"])
def test_a_bad_limit_is_a_400(client, alice_token, limit):
    response = client.get("/chat/sessions", {"limit": limit}, headers=bearer(alice_token))

    assert error_of(response) == (400, "invalid_parameter")


def test_before_naming_another_users_conversation_is_a_404(client, alice_token, bob, builtin_roles):
    bobs = conversation_create(owner=bob)

    response = client.get("/chat/sessions", {"before": str(bobs.pk)}, headers=bearer(alice_token))

    assert error_of(response) == (404, "not_found")


# --- GET /roles ----------------------------------------------------------------------


def test_roles_with_a_token_lists_the_active_roles(client, alice_token, builtin_roles):
    response = client.get("/roles", headers=bearer(alice_token))

    assert response.status_code == 200
    roles = response.json()["roles"]
    assert [r["slug"] for r in roles] == [role["slug"] for role in BUILTIN_ROLES]
    assert all(set(r) == {"slug", "name", "description"} for r in roles)


def test_roles_with_the_session_cookie(alice_client):
    response = alice_client.get("/roles")

    assert {r["slug"] for r in response.json()["roles"]} == {"assistant", "teacher", "programmer"}


def test_roles_never_show_a_system_prompt(client, alice_token, builtin_roles):
    Role.objects.create(slug="spy", name="Spy", system_prompt="TOP-SECRET-PROMPT: never reveal this")

    body = client.get("/roles", headers=bearer(alice_token)).content.decode()

    assert '"spy"' in body
    assert "TOP-SECRET-PROMPT" not in body
    for role in Role.objects.all():
        assert role.system_prompt.splitlines()[0] not in body


# --- DELETE /chat/session/<id> --------------------------------------------------------


def test_delete_with_a_token_deletes_the_conversation(client, alice_token, alice_conversation):
    response = client.delete(f"/chat/session/{alice_conversation.pk}", headers=bearer(alice_token))

    assert response.status_code == 200
    assert response.json() == {"deleted": True, "session_id": str(alice_conversation.pk)}
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


def test_delete_with_the_session_cookie_deletes_the_conversation(alice_client, alice_conversation):
    response = alice_client.delete(f"/chat/session/{alice_conversation.pk}")

    assert response.status_code == 200
    assert not Conversation.objects.exists()


@pytest.mark.parametrize("session_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_delete_of_an_unknown_or_malformed_session_is_a_404(client, alice_token, session_id):
    response = client.delete(f"/chat/session/{session_id}", headers=bearer(alice_token))

    assert error_of(response) == (404, "not_found")


# --- The whole flow ------------------------------------------------------------------


async def test_start_stream_history_sessions_delete(alice, builtin_roles, fake_openai):
    raw = (await atoken(user=alice))[1]
    client, auth = AsyncClient(), bearer(raw)
    fake_openai.queue_reply(Reply(tokens=["Hello", " Alice"]))

    started = await client.post(
        "/chat/start", {"role": "teacher", "title": "Flow"}, "application/json", headers=auth
    )
    session_id = started.json()["session_id"]
    response = await client.post(
        "/chat/stream", {"session_id": session_id, "message": "Hi"}, "application/json", headers=auth
    )
    events = await read_events(response)
    await generation.wait(events[-1][1]["message_id"])
    history = (await client.get("/chat/history", {"session_id": session_id}, headers=auth)).json()
    sessions = (await client.get("/chat/sessions", headers=auth)).json()["sessions"]
    deleted = await client.delete(f"/chat/session/{session_id}", headers=auth)
    after = await client.get("/chat/history", {"session_id": session_id}, headers=auth)

    assert started.status_code == 201
    assert events[-1][1]["type"] == "end"
    assert [(m["author"], m["content"], m["status"]) for m in history["messages"]] == [
        ("user", "Hi", "complete"),
        ("assistant", "Hello Alice", "complete"),
    ]
    assert [(s["session_id"], s["title"], s["last_message"]) for s in sessions] == [
        (session_id, "Flow", "Hello Alice")
    ]
    assert deleted.json() == {"deleted": True, "session_id": session_id}
    assert error_of(after) == (404, "not_found")


# --- Methods, paths, credentials -------------------------------------------------------

ENDPOINTS = [
    ("post", "/chat/start"),
    ("get", "/chat/stream"),
    ("post", "/chat/stream"),
    ("get", "/chat/history"),
    ("get", "/chat/sessions"),
    ("get", "/roles"),
    ("delete", "/chat/session/00000000-0000-0000-0000-000000000000"),
]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("get", "/chat/start", "POST"),
        ("delete", "/chat/stream", "GET, POST"),
        ("post", "/chat/history", "GET"),
        ("post", "/chat/sessions", "GET"),
        ("post", "/roles", "GET"),
        ("get", f"/chat/session/{uuid.uuid4()}", "DELETE"),
    ],
)
def test_a_wrong_method_is_a_405_naming_the_allowed_ones(client, alice_token, method, path, allow):
    response = getattr(client, method)(path, headers=bearer(alice_token))

    assert error_of(response) == (405, "method_not_allowed")
    assert response["Allow"] == allow


def test_an_unknown_path_under_chat_is_a_json_404(client, alice_token):
    response = client.get("/chat/nothing-here", headers=bearer(alice_token))

    assert error_of(response) == (404, "not_found")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_credentials_is_a_401_with_a_challenge(client, builtin_roles, method, path):
    response = getattr(client, method)(path)

    assert error_of(response) == (401, "unauthenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer cs_not-a-real-token", "Bearer not-even-our-prefix", "Bearer ", "Basic YWxpY2U6cHc="],
)
def test_a_bad_token_is_a_401(client, builtin_roles, authorization):
    response = client.post("/chat/start", headers={"Authorization": authorization})

    assert error_of(response) == (401, "unauthenticated")
    assert not Conversation.objects.exists()


def test_a_revoked_token_is_a_401(client, alice, builtin_roles):
    token, raw = api_token_create(user=alice, name="old")
    api_token_revoke(token_id=token.pk)

    response = client.get("/chat/sessions", headers=bearer(raw))

    assert error_of(response) == (401, "unauthenticated")


def test_a_tokens_first_use_is_noted_and_not_again_within_a_minute(client, alice, builtin_roles):
    token, raw = api_token_create(user=alice, name="script")

    client.get("/chat/sessions", headers=bearer(raw))
    token.refresh_from_db()
    first_use = token.last_used_at
    client.get("/chat/sessions", headers=bearer(raw))
    token.refresh_from_db()

    assert first_use is not None
    assert token.last_used_at == first_use


def test_a_token_used_again_after_a_minute_is_noted_again(client, alice, builtin_roles):
    token, raw = api_token_create(user=alice, name="script")
    long_ago = timezone.now() - timedelta(minutes=5)
    token.last_used_at = long_ago
    token.save(update_fields=["last_used_at"])

    client.get("/chat/sessions", headers=bearer(raw))
    token.refresh_from_db()

    assert token.last_used_at is not None and token.last_used_at > long_ago


def test_a_token_of_a_deactivated_user_is_a_401(client, alice, alice_token, builtin_roles):
    alice.is_active = False
    alice.save()

    response = client.get("/chat/sessions", headers=bearer(alice_token))

    assert error_of(response) == (401, "unauthenticated")


def test_a_bad_token_is_refused_even_with_a_valid_session_cookie(alice_client):
    response = alice_client.get("/chat/sessions", headers=bearer("cs_wrong"))

    assert error_of(response) == (401, "unauthenticated")


# --- Isolation: bob against alice's conversation ------------------------------------------


@pytest.fixture
def bob_client(client, bob):
    """Bob's client, signed in by his session cookie."""
    client.force_login(bob)
    return client


@pytest.fixture(params=["token", "cookie"])
def bob_headers(request, client, bob, bob_token) -> dict[str, str]:
    if request.param == "cookie":
        client.force_login(bob)
        return {}
    return bearer(bob_token)


def test_bob_cannot_read_alices_history(client, bob_headers, alice_conversation):
    response = client.get("/chat/history", {"session_id": str(alice_conversation.pk)}, headers=bob_headers)

    assert error_of(response) == (404, "not_found")
    assert_nothing_of_alices(response, alice_conversation)


def test_bob_cannot_delete_alices_conversation(client, bob_headers, alice_conversation):
    response = client.delete(f"/chat/session/{alice_conversation.pk}", headers=bob_headers)

    assert error_of(response) == (404, "not_found")
    assert_nothing_of_alices(response, alice_conversation)
    assert Conversation.objects.filter(pk=alice_conversation.pk).exists()


def test_bob_cannot_list_alices_sessions_by_user_id(client, alice, bob_headers, alice_conversation):
    response = client.get("/chat/sessions", {"user_id": alice.pk}, headers=bob_headers)

    assert error_of(response) == (404, "not_found")
    assert_nothing_of_alices(response, alice_conversation)


def test_bobs_sessions_never_list_alices_conversations(client, bob_headers, alice_conversation):
    response = client.get("/chat/sessions", headers=bob_headers)

    assert response.json() == {"sessions": [], "has_more": False, "next_before": None}


def test_a_user_id_that_is_not_the_callers_is_a_404_even_on_his_own_data(
    client, bob, alice, bob_headers, builtin_roles
):
    conversation = conversation_create(owner=bob, title="Bob's own")

    response = client.get(
        "/chat/history", {"session_id": str(conversation.pk), "user_id": alice.pk}, headers=bob_headers
    )

    assert error_of(response) == (404, "not_found")


def test_the_callers_own_user_id_is_accepted_with_a_cookie(bob_client, bob, builtin_roles):
    conversation = conversation_create(owner=bob, title="Bob's own")

    response = bob_client.get("/chat/history", {"session_id": str(conversation.pk), "user_id": bob.pk})

    assert response.status_code == 200
    assert response.json()["title"] == "Bob's own"


async def _bob_async_client(bob, auth: str) -> tuple[AsyncClient, dict[str, str]]:
    client = AsyncClient()
    if auth == "cookie":
        await client.aforce_login(bob)
        return client, {}
    return client, bearer((await atoken(user=bob))[1])


@pytest.mark.parametrize("auth", ["token", "cookie"])
async def test_bob_cannot_stream_into_alices_conversation_by_get(
    alice, bob, builtin_roles, fake_openai, auth
):
    conversation = await acreate(owner=alice, title="Alice's secret plans")
    client, headers = await _bob_async_client(bob, auth)

    response = await client.get(
        "/chat/stream", {"session_id": str(conversation.pk), "message": "Hi"}, headers=headers
    )

    assert error_of(response) == (404, "not_found")
    assert_nothing_of_alices(response, conversation)
    assert await Message.objects.acount() == 0
    assert fake_openai.requests == []


@pytest.mark.parametrize("auth", ["token", "cookie"])
async def test_bob_cannot_stream_into_alices_conversation_by_post(
    alice, bob, builtin_roles, fake_openai, auth
):
    conversation = await acreate(owner=alice, title="Alice's secret plans")
    client, headers = await _bob_async_client(bob, auth)

    response = await client.post(
        "/chat/stream",
        {"session_id": str(conversation.pk), "message": "Hi"},
        content_type="application/json",
        headers=headers,
    )

    assert error_of(response) == (404, "not_found")
    assert_nothing_of_alices(response, conversation)
    assert await Message.objects.acount() == 0


async def test_bob_streaming_into_alices_conversation_does_not_block_her(
    alice, bob, builtin_roles, fake_openai
):
    conversation = await acreate(owner=alice)
    client, headers = await _bob_async_client(bob, "token")
    await client.get("/chat/stream", {"session_id": str(conversation.pk), "message": "Hi"}, headers=headers)
    alice_client = AsyncClient()
    await alice_client.aforce_login(alice)

    events = await stream(alice_client, conversation, "Mine")

    assert events[-1][1]["status"] == "complete"


async def test_bob_gets_a_404_for_alices_conversation_even_while_her_reply_runs(
    alice, bob, builtin_roles, fake_openai
):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["a"], hang_after_tokens=1))
    alice_client = AsyncClient()
    await alice_client.aforce_login(alice)
    params = {"session_id": str(conversation.pk), "message": "Mine"}
    running = await alice_client.get("/chat/stream", params)
    client, headers = await _bob_async_client(bob, "token")

    response = await client.get("/chat/stream", {**params, "message": "Hi"}, headers=headers)

    await reply_stop(owner=alice, conversation_id=conversation.pk)
    events = await read_events(running)
    await generation.wait(events[-1][1]["message_id"])
    assert error_of(response) == (404, "not_found")


# --- CSRF -------------------------------------------------------------------------------


@pytest.fixture
def strict_client(alice, builtin_roles) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


def test_a_cookie_post_without_a_csrf_token_is_a_403(strict_client):
    response = strict_client.post("/chat/start")

    assert error_of(response) == (403, "csrf_failed")
    assert not Conversation.objects.exists()


def test_a_cookie_post_with_a_csrf_token_is_accepted(strict_client):
    strict_client.get("/")
    csrf_token = strict_client.cookies["csrftoken"].value

    response = strict_client.post("/chat/start", headers={"X-CSRFToken": csrf_token})

    assert response.status_code == 201


def test_a_cookie_delete_without_a_csrf_token_is_a_403(strict_client, alice_conversation):
    response = strict_client.delete(f"/chat/session/{alice_conversation.pk}")

    assert error_of(response) == (403, "csrf_failed")
    assert Conversation.objects.filter(pk=alice_conversation.pk).exists()


def test_a_token_post_needs_no_csrf_token(alice, alice_token, builtin_roles):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/chat/start", headers=bearer(alice_token))

    assert response.status_code == 201


# --- Over a real socket ------------------------------------------------------------------


def test_a_live_stream_arrives_event_by_event(live_app, fake_openai):
    carol = make_user("carol")
    raw = token_for(carol)
    conversation = conversation_create(owner=carol)
    tokens = ["One", " two", " three", " four", " five"]
    fake_openai.queue_reply(Reply(tokens=tokens, delay=0.05))
    address = urlsplit(live_app.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    query = urlencode({"session_id": str(conversation.pk), "message": "Count"})

    connection.request("GET", f"/chat/stream?{query}", headers=bearer(raw))
    response = connection.getresponse()
    events: list[tuple[int, dict, float]] = []
    event_id = 0
    while not events or events[-1][1]["type"] == "chunk":
        line = response.readline().decode()
        assert line, "the stream closed before its end event"
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            events.append((event_id, json.loads(line[6:]), time.monotonic()))
    connection.close()

    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    chunks = [data["content"] for _id, data, _at in events if data["type"] == "chunk"]
    assert "".join(chunks) == "".join(tokens)
    assert events[-1][1]["type"] == "end"
    ids = [event_id for event_id, _data, _at in events]
    assert ids == sorted(set(ids))
    # The first chunk was read while the model was still writing, not with the end.
    assert events[-1][2] - events[0][2] >= 0.1


def test_a_cookie_call_from_another_site_is_refused(client, alice, builtin_roles, fake_openai):
    conversation = conversation_create(owner=alice)
    client.force_login(alice)

    response = client.get(
        f"/chat/stream?session_id={conversation.pk}&message=hi", headers={"Sec-Fetch-Site": "cross-site"}
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "cross_site"
    assert not Message.objects.filter(conversation=conversation).exists()


# --- Overload and Redis trouble: a clear 503, never a 500 ---------------------------


async def test_past_the_process_capacity_a_stream_is_a_503_with_retry_after(
    alice, builtin_roles, fake_openai, settings
):
    settings.CHAT_MAX_REPLIES_PER_PROCESS = 1
    settings.CHAT_RETRY_AFTER_SECONDS = 7
    first, second = await acreate(owner=alice), await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["a"], hang_after_tokens=1))
    client, headers = AsyncClient(), bearer((await atoken(user=alice))[1])
    await client.get("/chat/stream", {"session_id": str(first.pk), "message": "one"}, headers=headers)

    params = {"session_id": str(second.pk), "message": "two"}
    response = await client.get("/chat/stream", params, headers=headers)

    assert error_of(response) == (503, "busy")
    assert response["Retry-After"] == "7"
    assert await Message.objects.filter(conversation=second).acount() == 0
    await reply_stop(owner=alice, conversation_id=first.pk)
    await generation.wait((await Message.objects.aget(conversation=first, author="assistant")).pk)


@pytest.mark.parametrize("limits_on", [True, False])
async def test_with_redis_down_a_stream_is_a_503_with_retry_after(
    alice, builtin_roles, fake_openai, own_redis, settings, limits_on
):
    if not limits_on:
        settings.CHAT_LIMIT_MESSAGES_PER_MINUTE = 0
        settings.CHAT_LIMIT_CONCURRENT_REPLIES = 0
        settings.CHAT_LIMIT_DAILY_TOKENS = 0
    conversation = await acreate(owner=alice)
    client, headers = AsyncClient(), bearer((await atoken(user=alice))[1])
    own_redis.stop()

    response = await client.post(
        "/chat/stream",
        {"session_id": str(conversation.pk), "message": "Hello?"},
        content_type="application/json",
        headers=headers,
    )

    assert error_of(response) == (503, "unavailable")
    assert int(response["Retry-After"]) > 0
    assert fake_openai.requests == []
