"""Picking a model: each reply goes to the provider of the model picked, really."""

import pytest
from channels.db import database_sync_to_async

from conversations.models import Conversation, Message
from conversations.sending import conversation_start, message_send, reply_regenerate
from conversations.services import ChatError, conversation_create
from providers.local_model_state import LocalModelState, local_model_state_write
from providers.models import Provider, ProviderModel
from providers.selectors import ModelPick
from roles.models import Role
from tests.conftest import second_provider_add, wait_for_reply
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

acreate = database_sync_to_async(conversation_create)
SECOND_LARGE = ModelPick("second", "second-large")


@pytest.fixture
def second(second_fake, fake_openai):
    second_provider_add(second_fake)
    return second_fake


async def send(user, conversation, text, pick=None):
    exchange = await message_send(owner=user, conversation_id=conversation.pk, content=text, pick=pick)
    return await wait_for_reply(exchange.reply.pk)


async def test_a_picked_model_is_asked_at_its_own_provider_with_its_key(
    alice, builtin_roles, fake_openai, second
):
    conversation = await acreate(owner=alice)
    second.queue_reply(Reply(tokens=["From", " second"]))

    reply = await send(alice, conversation, "Hi", pick=SECOND_LARGE)

    assert reply.content == "From second"
    assert (reply.provider, reply.model) == ("second", "second-large")
    request = second.requests[-1]
    assert request.body["model"] == "second-large"
    assert request.headers["authorization"] == "Bearer second-secret-key"
    assert fake_openai.requests == []


async def test_the_pick_holds_for_the_next_replies_until_another(alice, builtin_roles, fake_openai, second):
    conversation = await acreate(owner=alice)
    await send(alice, conversation, "one", pick=SECOND_LARGE)

    second_reply = await send(alice, conversation, "two")
    third = await send(alice, conversation, "three", pick=ModelPick("default", "fake-model"))

    assert (second_reply.provider, second_reply.model) == ("second", "second-large")
    assert (third.provider, third.model) == ("default", "fake-model")
    assert len(second.requests) == 2 and len(fake_openai.requests) == 1
    saved = await Conversation.objects.aget(pk=conversation.pk)
    assert (saved.provider, saved.model) == ("default", "fake-model")


async def test_the_history_goes_to_the_newly_picked_model(alice, builtin_roles, fake_openai, second):
    conversation = await acreate(owner=alice)
    await send(alice, conversation, "My name is Ada.")

    await send(alice, conversation, "What is my name?", pick=SECOND_LARGE)

    sent = [m["content"] for m in second.last_messages()]
    assert "My name is Ada." in sent and "Echo: My name is Ada." in sent


async def test_an_unknown_model_is_refused_before_anything_is_saved(
    alice, builtin_roles, fake_openai, second
):
    conversation = await acreate(owner=alice)

    with pytest.raises(ChatError) as refused:
        await message_send(
            owner=alice, conversation_id=conversation.pk, content="Hi", pick=ModelPick("second", "nope")
        )

    assert refused.value.code == "invalid_model"
    assert not await Message.objects.filter(conversation=conversation).aexists()
    assert second.requests == [] and fake_openai.requests == []


async def test_a_pinned_role_keeps_its_model_whatever_is_picked(alice, builtin_roles, fake_openai, second):
    await Role.objects.filter(slug="programmer").aupdate(
        provider="second", model="second-vision", model_pinned=True
    )
    conversation = await acreate(owner=alice, role_slug="programmer")

    reply = await send(alice, conversation, "Hi", pick=ModelPick("default", "fake-model"))

    assert (reply.provider, reply.model) == ("second", "second-vision")
    assert second.requests[-1].body["model"] == "second-vision"


async def test_a_models_own_temperature_is_sent(alice, builtin_roles, fake_openai, second):
    await ProviderModel.objects.filter(name="second-large").aupdate(temperature="0.30")
    conversation = await acreate(owner=alice)

    await send(alice, conversation, "Hi", pick=SECOND_LARGE)

    assert second.requests[-1].body["temperature"] == 0.3


async def test_a_new_chat_starts_on_the_picked_model(alice, builtin_roles, fake_openai, second):
    exchange = await conversation_start(owner=alice, role_slug=None, content="Hi", pick=SECOND_LARGE)

    reply = await wait_for_reply(exchange.reply.pk)

    assert reply.model == "second-large" and len(second.requests) == 1


async def test_a_disabled_provider_is_refused_for_a_conversation_that_used_it(
    alice, builtin_roles, fake_openai, second
):
    conversation = await acreate(owner=alice)
    await send(alice, conversation, "one", pick=SECOND_LARGE)
    await Provider.objects.aupdate(enabled=False)

    with pytest.raises(ChatError) as refused:
        await message_send(owner=alice, conversation_id=conversation.pk, content="two")

    assert refused.value.code == "invalid_model"
    assert await Message.objects.filter(conversation=conversation).acount() == 2  # "two" was not saved


async def test_regenerating_with_another_model_writes_the_new_version_with_it(
    alice, builtin_roles, fake_openai, second
):
    conversation = await acreate(owner=alice)
    await send(alice, conversation, "Hi")

    exchange = await reply_regenerate(owner=alice, conversation_id=conversation.pk, pick=SECOND_LARGE)
    reply = await wait_for_reply(exchange.reply.pk)

    assert (reply.provider, reply.model) == ("second", "second-large")
    assert second.last_messages()[-1]["content"] == "Hi"


@pytest.fixture
def local_model_preparing(settings, tmp_path):
    """As ./run says while it compiles the built-in model, which is the default provider."""
    state_file = tmp_path / "local-model.json"
    local_model_state_write(state_file, LocalModelState("preparing", stage="building", percent=45))
    settings.CHATSITE_LOCAL_MODEL_STATE_FILE = str(state_file)
    return state_file


async def test_a_message_to_the_local_model_being_prepared_is_refused_before_anything_is_saved(
    alice, builtin_roles, fake_openai, local_model_preparing
):
    conversation = await acreate(owner=alice)

    with pytest.raises(ChatError) as refused:
        await message_send(owner=alice, conversation_id=conversation.pk, content="Hi")

    assert refused.value.code == "unavailable" and refused.value.retry_after == 30
    assert "not ready yet (compiling its server: 45%)" in refused.value.message
    assert not await Message.objects.filter(conversation=conversation).aexists()
    assert fake_openai.requests == []


async def test_a_message_to_the_local_model_that_failed_says_no_model_is_available(
    alice, builtin_roles, fake_openai, local_model_preparing
):
    local_model_state_write(local_model_preparing, LocalModelState("failed", reason="needs cmake"))
    conversation = await acreate(owner=alice)

    with pytest.raises(ChatError) as refused:
        await message_send(owner=alice, conversation_id=conversation.pk, content="Hi")

    assert refused.value.code == "unavailable" and refused.value.retry_after is None
    assert refused.value.message.startswith("No model is available")
    assert "needs cmake" not in refused.value.message  # the console's detail, not the page's


async def test_a_model_of_another_provider_answers_while_the_local_model_is_prepared(
    alice, builtin_roles, fake_openai, second, local_model_preparing
):
    conversation = await acreate(owner=alice)

    reply = await send(alice, conversation, "Hi", pick=SECOND_LARGE)

    assert reply.status == "complete" and reply.provider == "second"


async def test_the_local_model_once_ready_answers(alice, builtin_roles, fake_openai, local_model_preparing):
    local_model_state_write(local_model_preparing, LocalModelState("ready"))
    conversation = await acreate(owner=alice)

    reply = await send(alice, conversation, "Hi")

    assert reply.status == "complete" and reply.content == "Echo: Hi"
