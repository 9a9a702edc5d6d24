"""A database locked past its wait (or down) answers 503 with Retry-After, never a 500:
JSON for the API, text for a page or an htmx request."""

import pytest
from django.test import Client

from conversations.models import Conversation
from conversations.services import conversation_create
from conversations.tokens import api_token_create
from tests.conftest import database_write_locked

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    return client


def test_a_page_write_while_the_database_is_locked_is_a_503_saying_when_to_try_again(
    alice, builtin_roles, alice_client, settings
):
    conversation = conversation_create(owner=alice, title="Before")

    with database_write_locked():
        response = alice_client.post(
            f"/c/{conversation.pk}/rename/", {"title": "After"}, headers={"HX-Request": "true"}
        )

    assert (response.status_code, response["Retry-After"]) == (503, str(settings.CHAT_RETRY_AFTER_SECONDS))
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert f"Try again in {settings.CHAT_RETRY_AFTER_SECONDS} s" in response.content.decode()
    assert Conversation.objects.get(pk=conversation.pk).title == "Before"


def test_an_api_write_while_the_database_is_locked_is_a_503_in_the_apis_error_shape(
    alice, builtin_roles, settings
):
    _token, raw = api_token_create(user=alice)
    client = Client(raise_request_exception=False)
    bearer = {"Authorization": f"Bearer {raw}"}
    # Used once before: the token's use is not written again for a while.
    assert client.get("/roles", headers=bearer).status_code == 200

    with database_write_locked():
        response = client.post("/chat/start", {"role": "teacher"}, headers=bearer)

    assert (response.status_code, response["Retry-After"]) == (503, str(settings.CHAT_RETRY_AFTER_SECONDS))
    assert response.json()["error"]["code"] == "unavailable"
    assert not Conversation.objects.exists()


def test_the_same_write_once_the_lock_is_gone_succeeds(alice, builtin_roles, alice_client):
    conversation = conversation_create(owner=alice, title="Before")
    with database_write_locked():
        alice_client.post(f"/c/{conversation.pk}/rename/", {"title": "After"}, headers={"HX-Request": "true"})

    response = alice_client.post(
        f"/c/{conversation.pk}/rename/", {"title": "After"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert Conversation.objects.get(pk=conversation.pk).title == "After"
