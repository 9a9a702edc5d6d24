import pytest
from django.test import Client

from conversations.models import Conversation, Message
from conversations.services import conversation_create
from conversations.tokens import api_token_create

# The API's views reach the database through channels' database_sync_to_async, which
# closes old connections: that needs real transactions, not a test wrapped in one.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def bearer(user) -> dict[str, str]:
    _token, raw = api_token_create(user=user, name="test")
    return {"Authorization": f"Bearer {raw}"}


def say(conversation: Conversation, content: str, author: str = "user") -> Message:
    return Message.objects.create(conversation=conversation, author=author, content=content, turn=1)


def test_search_answers_with_each_hits_conversation_message_and_snippet(alice, builtin_roles):
    chat = conversation_create(owner=alice, role_slug="teacher", title="Zoo")
    question = say(chat, "Where do walruses live?")
    answer = say(chat, "Walruses live in the Arctic, on sea ice.", author="assistant")
    say(chat, "Thanks!")

    response = Client().get("/chat/search", {"q": "walruses"}, headers=bearer(alice))

    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "walruses"
    results = {r["message_id"]: r for r in body["results"]}
    assert set(results) == {question.pk, answer.pk}
    hit = results[answer.pk]
    assert (hit["session_id"], hit["title"], hit["author"]) == (str(chat.pk), "Zoo", "assistant")
    assert hit["snippet"] == "Walruses live in the Arctic, on sea ice."
    assert [hit["snippet"][a:b] for a, b in hit["highlights"]] == ["Walruses"]
    assert hit["created_at"] == answer.created_at.isoformat()


def test_search_limits_its_results(alice, builtin_roles):
    chat = conversation_create(owner=alice, role_slug="teacher", title="Many")
    for n in range(5):
        say(chat, f"walrus number {n}")

    response = Client().get("/chat/search", {"q": "walrus", "limit": "2"}, headers=bearer(alice))

    assert len(response.json()["results"]) == 2


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "missing_parameter"),
        ({"q": "  "}, "missing_parameter"),
        ({"q": "x" * 201}, "invalid_parameter"),
        ({"q": "walrus", "limit": "0"}, "invalid_parameter"),
        ({"q": "walrus", "limit": "51"}, "invalid_parameter"),
    ],
)
def test_search_refuses_bad_parameters_with_400(alice, params, code):
    response = Client().get("/chat/search", params, headers=bearer(alice))

    assert (response.status_code, response.json()["error"]["code"]) == (400, code)


@pytest.mark.parametrize("path", ["/chat/search", "/chat/sessions"])
def test_the_api_refuses_a_nul_in_q(alice, path):
    response = Client().get(path, {"q": "walrus\x00sleeps"}, headers=bearer(alice))

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_parameter")


def test_the_sidebar_searches_for_a_nul_in_q_as_a_space(alice, builtin_roles):
    say(conversation_create(owner=alice, role_slug="teacher", title="Zoo"), "the walrus sleeps")
    client = Client()
    client.force_login(alice)

    response = client.get("/search/", {"q": "walrus\x00sleeps"}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert b"<mark>walrus</mark>" in response.content
    assert response["Vary"].count("HX-Request") == 1


def test_search_needs_a_signed_in_caller():
    response = Client().get("/chat/search", {"q": "walrus"})

    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthenticated")


def test_search_finds_only_the_callers_messages(alice, bob, builtin_roles):
    say(conversation_create(owner=alice, role_slug="teacher", title="Mine"), "alice's walrus")

    response = Client().get("/chat/search", {"q": "walrus"}, headers=bearer(bob))

    assert response.json()["results"] == []


def test_sessions_with_q_lists_only_conversations_that_match(alice, builtin_roles):
    walrus_title = conversation_create(owner=alice, role_slug="teacher", title="Walrus facts")
    walrus_text = conversation_create(owner=alice, role_slug="teacher", title="Animals")
    say(walrus_text, "and the walrus?")
    say(conversation_create(owner=alice, role_slug="teacher", title="Cooking"), "pasta")

    response = Client().get("/chat/sessions", {"q": "WALRUS"}, headers=bearer(alice))

    assert {s["session_id"] for s in response.json()["sessions"]} == {
        str(walrus_title.pk),
        str(walrus_text.pk),
    }


def test_sessions_with_q_pages_through_the_matches(alice, builtin_roles):
    for n in range(3):
        say(conversation_create(owner=alice, role_slug="teacher", title=f"Walrus {n}"), "hello")
    conversation_create(owner=alice, role_slug="teacher", title="Unrelated")
    headers = bearer(alice)

    first = Client().get("/chat/sessions", {"q": "walrus", "limit": "2"}, headers=headers).json()
    rest = (
        Client()
        .get("/chat/sessions", {"q": "walrus", "limit": "2", "before": first["next_before"]}, headers=headers)
        .json()
    )

    assert [s["title"] for s in first["sessions"]] == ["Walrus 2", "Walrus 1"]
    assert first["has_more"] is True
    assert [s["title"] for s in rest["sessions"]] == ["Walrus 0"]
    assert rest["has_more"] is False


def test_sessions_refuses_a_q_too_long(alice):
    response = Client().get("/chat/sessions", {"q": "x" * 201}, headers=bearer(alice))

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_parameter")
