"""A conversation's note: saved from its menu, sent after the role's prompt and the custom
instructions with each of its replies, and only its owner's to change."""

import pytest
from asgiref.sync import sync_to_async

from conversations.errors import ChatError
from conversations.instructions import HEADING, NOTE_HEADING, instructions_set
from conversations.models import INSTRUCTIONS_MAX_CHARS, Conversation
from conversations.sending import message_send
from conversations.services import conversation_create, conversation_note_set
from roles.models import Role
from tests.conftest import wait_for_reply

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.django_db(transaction=True)
async def test_the_model_gets_the_note_after_the_roles_prompt_and_the_instructions(
    alice, builtin_roles, fake_openai
):
    await sync_to_async(instructions_set)(user=alice, text="I am a nurse.")
    conversation = await sync_to_async(conversation_create)(owner=alice, role_slug="teacher")
    await sync_to_async(conversation_note_set)(
        owner=alice, conversation_id=conversation.pk, text="  We are planning a trip to Kyoto. "
    )

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Where first?")
    await wait_for_reply(exchange.reply.pk)

    teacher = await Role.objects.aget(slug="teacher")
    assert fake_openai.last_messages()[0] == {
        "role": "system",
        "content": f"{teacher.system_prompt}\n\n{HEADING}\nI am a nurse.\n\n"
        f"{NOTE_HEADING}\nWe are planning a trip to Kyoto.",
    }


def test_saving_the_note_keeps_the_conversations_place_in_time(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    written = Conversation.objects.get(pk=conversation.pk).updated_at

    conversation_note_set(owner=alice, conversation_id=conversation.pk, text="Short answers.")

    saved = Conversation.objects.get(pk=conversation.pk)
    assert (saved.system_note, saved.updated_at) == ("Short answers.", written)


@pytest.mark.parametrize("text", [7, "x" * (INSTRUCTIONS_MAX_CHARS + 1), "a\x00b"])
def test_a_note_that_cannot_be_saved_is_refused_and_the_old_one_kept(alice, builtin_roles, text):
    conversation = conversation_create(owner=alice)
    conversation_note_set(owner=alice, conversation_id=conversation.pk, text="Kept.")

    with pytest.raises(ChatError):
        conversation_note_set(owner=alice, conversation_id=conversation.pk, text=text)

    assert Conversation.objects.get(pk=conversation.pk).system_note == "Kept."


def test_nobody_sets_the_note_of_anyone_elses_conversation(alice, bob, builtin_roles):
    theirs = conversation_create(owner=bob)

    with pytest.raises(Conversation.DoesNotExist):
        conversation_note_set(owner=alice, conversation_id=theirs.pk, text="Mine now.")

    assert Conversation.objects.get(pk=theirs.pk).system_note == ""


def test_the_form_saves_the_note_and_says_so(client, alice, builtin_roles):
    client.force_login(alice)
    conversation = conversation_create(owner=alice)

    response = client.post(f"/c/{conversation.pk}/note/", {"note": "Answer in French."}, **HTMX)

    assert response.status_code == 200
    assert "Saved. The next reply is written with it." in response.content.decode()
    assert ">Answer in French.</textarea>" in response.content.decode()
    assert Conversation.objects.get(pk=conversation.pk).system_note == "Answer in French."


def test_the_form_refuses_a_note_too_long_saying_why(client, alice, builtin_roles):
    client.force_login(alice)
    conversation = conversation_create(owner=alice)

    response = client.post(
        f"/c/{conversation.pk}/note/", {"note": "x" * (INSTRUCTIONS_MAX_CHARS + 1)}, **HTMX
    )

    assert response.status_code == 422
    assert 'role="alert"' in response.content.decode()
    assert Conversation.objects.get(pk=conversation.pk).system_note == ""
