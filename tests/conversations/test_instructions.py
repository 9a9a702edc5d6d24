"""Custom instructions: saved on the settings page, copied into each new conversation, and
sent to the model after the role's prompt, as ChatGPT's are."""

import pytest
from asgiref.sync import sync_to_async

from conversations.instructions import HEADING, instructions_get, instructions_set
from conversations.models import INSTRUCTIONS_MAX_CHARS, UserInstructions
from conversations.sending import message_send
from conversations.services import conversation_create
from roles.models import Role
from tests.conftest import wait_for_reply

pytestmark = pytest.mark.django_db


def test_the_settings_page_saves_them_and_shows_them_again(client, alice, builtin_roles):
    client.force_login(alice)

    saved = client.post("/accounts/settings/instructions/", {"text": "  I teach physics. Answer briefly.  "})
    page = client.get("/accounts/settings/").content.decode()

    assert saved.status_code == 302
    assert instructions_get(user_id=alice.pk) == "I teach physics. Answer briefly."
    assert "I teach physics. Answer briefly.</textarea>" in page
    assert "Your custom instructions were saved." in page
    # Two forms have a `text` field: each its own ids, and its help text where it points.
    assert page.count('id="instructions_text"') == 1 and page.count('id="prompt_text"') == 1
    assert 'aria-describedby="instructions_text_helptext"' in page
    assert 'id="instructions_text_helptext"' in page


def test_instructions_too_long_are_refused_and_nothing_is_saved(client, alice, builtin_roles):
    client.force_login(alice)
    instructions_set(user=alice, text="Keep these.")

    refused = client.post("/accounts/settings/instructions/", {"text": "x" * (INSTRUCTIONS_MAX_CHARS + 1)})

    assert refused.status_code == 400
    assert "at most 1500 characters" in refused.content.decode()
    assert instructions_get(user_id=alice.pk) == "Keep these."


def test_a_form_without_the_field_changes_nothing(client, alice, builtin_roles):
    client.force_login(alice)
    instructions_set(user=alice, text="Keep these.")

    refused = client.post("/accounts/settings/instructions/", {})

    assert refused.status_code == 400
    assert instructions_get(user_id=alice.pk) == "Keep these."


def test_saving_them_empty_removes_them(alice):
    instructions_set(user=alice, text="Call me Al.")

    instructions_set(user=alice, text="   ")

    assert instructions_get(user_id=alice.pk) == ""
    assert UserInstructions.objects.get(user=alice).text == ""


@pytest.mark.django_db(transaction=True)
async def test_the_model_gets_them_after_the_roles_prompt(alice, bob, builtin_roles, fake_openai):
    await sync_to_async(instructions_set)(user=alice, text="I am a nurse. Use metric units.")
    await sync_to_async(instructions_set)(user=bob, text="Bob's own wishes.")
    conversation = await sync_to_async(conversation_create)(owner=alice, role_slug="teacher")

    exchange = await message_send(
        owner=alice, conversation_id=conversation.pk, content="How tall is Everest?"
    )
    await wait_for_reply(exchange.reply.pk)

    teacher = await Role.objects.aget(slug="teacher")
    system = fake_openai.last_messages()[0]
    assert system == {
        "role": "system",
        "content": f"{teacher.system_prompt}\n\n{HEADING}\nI am a nurse. Use metric units.",
    }


@pytest.mark.django_db(transaction=True)
async def test_a_change_applies_to_new_conversations_only(alice, builtin_roles, fake_openai):
    await sync_to_async(instructions_set)(user=alice, text="Answer in French.")
    earlier = await sync_to_async(conversation_create)(owner=alice)
    await sync_to_async(instructions_set)(user=alice, text="Answer in German.")
    later = await sync_to_async(conversation_create)(owner=alice)

    for conversation in (earlier, later):
        exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Hello")
        await wait_for_reply(exchange.reply.pk)

    earlier_system, later_system = (
        request.body["messages"][0]["content"] for request in fake_openai.requests
    )
    assert earlier_system.endswith("\nAnswer in French.")
    assert later_system.endswith("\nAnswer in German.")


@pytest.mark.django_db(transaction=True)
async def test_without_instructions_the_system_message_is_the_roles_prompt(alice, builtin_roles, fake_openai):
    conversation = await sync_to_async(conversation_create)(owner=alice, role_slug="teacher")

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Hi")
    await wait_for_reply(exchange.reply.pk)

    teacher = await Role.objects.aget(slug="teacher")
    assert fake_openai.last_messages()[0] == {"role": "system", "content": teacher.system_prompt}
