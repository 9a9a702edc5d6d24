"""The demo's later API for several providers: GET /providers, and provider/model on /chat/stream."""

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from conversations import generation
from conversations.models import Message
from conversations.services import conversation_create
from conversations.tokens import api_token_create
from tests.conftest import second_provider_add
from tests.conversations.test_api import bearer, read_events
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(alice):
    return api_token_create(user=alice, name="test")[1]


@pytest.fixture
def second(second_fake, fake_openai):
    second_provider_add(second_fake)
    return second_fake


def test_providers_lists_each_provider_with_its_models_and_the_default(client, token, second):
    response = client.get("/providers", headers=bearer(token))

    assert response.status_code == 200
    data = response.json()
    assert data["default_provider"] == "default"
    default, added = data["providers"]
    assert (default["id"], default["models"], default["is_default"]) == ("default", ["fake-model"], True)
    assert (added["id"], added["name"], added["is_default"]) == ("second", "Second Cloud", False)
    assert added["models"] == ["second-large", "second-vision"]
    assert added["model_info"][1] == {
        "id": "second-vision",
        "name": "Second Vision",
        "vision": True,
        "reasoning": False,
        "context_window": None,
    }


def test_providers_never_names_a_key_or_a_url(client, token, second):
    body = client.get("/providers", headers=bearer(token)).content.decode()

    for secret in ["second-secret-key", "test-key", second.base_url, "127.0.0.1"]:
        assert secret not in body


def test_providers_needs_a_signed_in_caller(client, second):
    response = client.get("/providers")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


async def stream(token, conversation, **params):
    response = await AsyncClient().post(
        "/chat/stream",
        {"session_id": str(conversation.pk), "message": "Hi", **params},
        content_type="application/json",
        headers=bearer(token),
    )
    return response


async def test_stream_with_a_provider_and_a_model_is_written_by_that_model(
    alice, token, builtin_roles, second
):
    conversation = await sync_to_async(conversation_create)(owner=alice)
    second.queue_reply(Reply(tokens=["Second", " says", " hi"]))

    response = await stream(token, conversation, provider="second", model="second-large")
    events = [data for _id, data in await read_events(response)]
    await generation.wait(events[-1]["message_id"])

    assert "".join(e["content"] for e in events if e["type"] == "chunk") == "Second says hi"
    assert second.requests[-1].body["model"] == "second-large"
    reply = await Message.objects.aget(pk=events[-1]["message_id"])
    assert (reply.provider, reply.model) == ("second", "second-large")


async def test_stream_with_a_model_alone_finds_its_provider(alice, token, builtin_roles, second):
    conversation = await sync_to_async(conversation_create)(owner=alice)

    response = await stream(token, conversation, model="second-vision")
    events = [data for _id, data in await read_events(response)]
    await generation.wait(events[-1]["message_id"])

    assert second.requests[-1].body["model"] == "second-vision"


@pytest.mark.parametrize(
    "params",
    [{"provider": "nowhere"}, {"provider": "second", "model": "no-such-model"}, {"provider": "default/x"}],
)
async def test_stream_naming_an_unknown_provider_or_model_is_a_400_and_saves_nothing(
    alice, token, builtin_roles, second, params
):
    conversation = await sync_to_async(conversation_create)(owner=alice)

    response = await stream(token, conversation, **params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_model"
    assert not await Message.objects.filter(conversation=conversation).aexists()
    assert second.requests == []
