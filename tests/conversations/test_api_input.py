"""What the JSON API does with input it cannot use: a 400 in its error shape, and nothing saved."""

import json

import pytest
from django.test import Client

from conversations.models import Conversation, Message
from conversations.services import conversation_create
from conversations.tokens import api_token_create

# The API's views reach the database through database_sync_to_async (see test_api.py).
pytestmark = pytest.mark.django_db(transaction=True)

FORM = "application/x-www-form-urlencoded"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def headers(alice) -> dict[str, str]:
    _token, raw = api_token_create(user=alice, name="test")
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def conversation(alice, builtin_roles) -> Conversation:
    return conversation_create(owner=alice, title="Plans")


def error_of(response) -> tuple[int, str]:
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()["error"]["code"]


def post_json(client: Client, path: str, body: str | bytes, headers: dict[str, str]):
    return client.post(path, body, content_type="application/json", headers=headers)


# --- Lone surrogates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"session_id": "%s", "message": "\\ud800"}',
        '{"session_id": "%s", "message": "half a pair: \\udc00 and \\ud83d"}',
        '{"session_id": "%s", "message": "hi", "extra": {"\\ud800": ["\\udfff"]}}',
    ],
    ids=["message", "unpaired-halves", "nested-key-and-value"],
)
def test_a_message_with_a_lone_surrogate_escape_is_a_400(client, headers, conversation, body):
    response = post_json(client, "/chat/stream", body % conversation.pk, headers)

    assert error_of(response) == (400, "invalid_json")
    assert Message.objects.count() == 0


def test_a_title_with_a_lone_surrogate_is_a_400(client, headers, builtin_roles):
    response = post_json(client, "/chat/start", '{"title": "\\ud800"}', headers)

    assert error_of(response) == (400, "invalid_json")
    assert Conversation.objects.count() == 0


def test_a_body_with_utf8_encoded_surrogate_bytes_is_a_400(client, headers, builtin_roles):
    response = post_json(client, "/chat/start", b'{"title": "\xed\xa0\x80"}', headers)

    assert error_of(response) == (400, "invalid_json")
    assert Conversation.objects.count() == 0


def test_a_surrogate_pair_is_an_ordinary_character(client, headers, builtin_roles):
    response = post_json(client, "/chat/start", '{"title": "\\ud83d\\ude00"}', headers)

    assert response.status_code == 201
    assert response.json()["title"] == "\N{GRINNING FACE}"


# --- Bodies that cannot be parsed --------------------------------------------------------------


def test_json_nested_100000_deep_is_a_400(client, headers, builtin_roles):
    response = post_json(client, "/chat/start", '{"title": ' + "[" * 100_000 + "]" * 100_000 + "}", headers)

    assert error_of(response) == (400, "invalid_json")
    assert Conversation.objects.count() == 0


def test_a_form_body_that_is_not_utf8_is_a_400(client, headers, builtin_roles):
    response = client.post("/chat/start", b"title=%ff", content_type=FORM, headers=headers)

    assert error_of(response) == (400, "invalid_parameter")
    assert Conversation.objects.count() == 0


def test_a_form_body_still_works(client, headers, builtin_roles):
    response = client.post("/chat/start", b"title=Caf%C3%A9+talk", content_type=FORM, headers=headers)

    assert response.status_code == 201
    assert response.json()["title"] == "Café talk"


def test_a_malformed_multipart_body_is_a_json_400(client, headers, builtin_roles):
    response = client.post(
        "/chat/start", b"--x\r\n\r\n", content_type="multipart/form-data; boundary=", headers=headers
    )

    assert error_of(response) == (400, "invalid_body")
    assert Conversation.objects.count() == 0


def test_a_malformed_multipart_body_with_a_cookie_is_a_json_400(client, alice, builtin_roles):
    """The CSRF check reads the form for its token: what it cannot read is the API's 400 too."""
    client.force_login(alice)

    response = client.post("/chat/start", b"--x\r\n\r\n", content_type="multipart/form-data; boundary=")

    assert error_of(response) == (400, "invalid_body")
    assert Conversation.objects.count() == 0


# --- Query strings ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["message=%ff", "message=%ED%A0%80", "%C3=x"])
def test_a_query_string_that_is_not_utf8_is_a_400(client, headers, conversation, query):
    response = client.get(f"/chat/stream?session_id={conversation.pk}&{query}", headers=headers)

    assert error_of(response) == (400, "invalid_parameter")
    assert Message.objects.count() == 0


def test_a_query_string_with_too_many_fields_is_a_json_400(client, headers, builtin_roles):
    response = client.get("/chat/sessions?" + "&".join(f"f{i}=x" for i in range(1001)), headers=headers)

    assert error_of(response) == (400, "too_many_fields")


# --- Wrong types and NUL -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"title": {"text": "Plans"}},
        {"title": ["Plans"]},
        {"title": 42},
        {"title": True},
        {"role": ["teacher"]},
        {"role": {"slug": "teacher"}},
        {"role": 7},
        {"user_id": ["1"]},
        {"user_id": {"id": 1}},
        {"user_id": True},
    ],
    ids=lambda fields: f"{next(iter(fields))}-{type(next(iter(fields.values()))).__name__}",
)
def test_start_with_a_field_of_the_wrong_type_is_a_400(client, headers, builtin_roles, fields):
    response = post_json(client, "/chat/start", json.dumps(fields), headers)

    assert error_of(response) == (400, "invalid_parameter")
    assert Conversation.objects.count() == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"message": {"text": "hi"}},
        {"message": ["hi"]},
        {"message": 3.5},
        {"session_id": 12},
        {"session_id": ["x"]},
        {"role": ["teacher"]},
    ],
    ids=lambda fields: f"{next(iter(fields))}-{type(next(iter(fields.values()))).__name__}",
)
def test_stream_with_a_field_of_the_wrong_type_is_a_400(client, headers, conversation, fields):
    body = {"session_id": str(conversation.pk), "message": "hi", **fields}

    response = post_json(client, "/chat/stream", json.dumps(body), headers)

    assert error_of(response) == (400, "invalid_parameter")
    assert Message.objects.count() == 0


def test_the_callers_own_user_id_as_a_json_number_is_accepted(client, alice, headers, builtin_roles):
    response = post_json(client, "/chat/start", json.dumps({"user_id": alice.pk}), headers)

    assert response.status_code == 201


@pytest.mark.parametrize(("field", "code"), [("title", "invalid_title"), ("role", "unknown_role")])
def test_start_with_a_nul_character_is_a_400(client, headers, builtin_roles, field, code):
    response = post_json(client, "/chat/start", json.dumps({field: "Pla\x00ns"}), headers)

    assert error_of(response) == (400, code)
    assert Conversation.objects.count() == 0


def test_a_message_with_a_nul_character_is_a_400(client, headers, conversation):
    response = client.get(
        "/chat/stream", {"session_id": str(conversation.pk), "message": "a\x00b"}, headers=headers
    )

    assert error_of(response) == (400, "invalid_message")
    assert Message.objects.count() == 0
