"""What was sent: each reply records the message list its request upstream held, and its
owner can see it (the system message's text only when staff)."""

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Message
from conversations.sending import message_send
from conversations.sent import reply_sent_get
from conversations.services import conversation_create
from tests.conftest import wait_for_reply

pytestmark = pytest.mark.django_db


def add(conversation, author: str, content: str, turn: int, **fields) -> Message:
    return Message.objects.create(
        conversation=conversation, author=author, content=content, turn=turn, **fields
    )


@pytest.mark.django_db(transaction=True)
async def test_a_reply_records_exactly_the_messages_its_request_held(
    alice, builtin_roles, fake_openai, settings
):
    settings.CHAT_CONTEXT_ROUNDS = 2
    conversation = await sync_to_async(conversation_create)(owner=alice, role_slug="teacher")
    for turn in (1, 2, 3):
        question = await sync_to_async(add)(conversation, "user", f"Question {turn}", turn)
        await sync_to_async(add)(conversation, "assistant", f"Answer {turn}", turn, reply_to=question)

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Question 4")
    await wait_for_reply(exchange.reply.pk)

    sent = await sync_to_async(reply_sent_get)(owner=alice, reply_id=exchange.reply.pk)
    assert sent is not None
    upstream = fake_openai.last_messages()
    assert upstream[0] == {"role": "system", "content": sent.system}
    assert [{"role": m.author, "content": m.content} for m in sent.messages] == upstream[1:]
    assert [m.content for m in sent.messages] == [
        "Question 2",
        "Answer 2",
        "Question 3",
        "Answer 3",
        "Question 4",
    ]


def test_nobody_sees_what_anyone_elses_reply_was_sent(alice, bob, builtin_roles):
    theirs = conversation_create(owner=bob)
    reply = add(theirs, "assistant", "Bob's answer", 1, sent={"system": "s", "messages": [], "images": False})

    with pytest.raises(Message.DoesNotExist):
        reply_sent_get(owner=alice, reply_id=reply.pk)


def test_ids_of_another_conversation_in_a_record_are_not_shown(alice, bob, builtin_roles):
    secret = add(conversation_create(owner=bob), "user", "Bob's secret", 1)
    mine = conversation_create(owner=alice)
    question = add(mine, "user", "My question", 1)
    reply = add(mine, "assistant", "Answer", 1, sent={"system": "s", "messages": [secret.pk, question.pk]})

    sent = reply_sent_get(owner=alice, reply_id=reply.pk)

    assert sent is not None
    assert [m.content for m in sent.messages] == ["My question"]


def test_a_reply_from_before_the_record_says_so(client, alice, builtin_roles):
    client.force_login(alice)
    old = add(conversation_create(owner=alice), "assistant", "Old answer", 1)

    response = client.get(f"/replies/{old.pk}/sent/")

    assert response.status_code == 200
    assert "Not kept for replies written before Chatsite recorded it." in response.content.decode()


@pytest.mark.parametrize(("staff", "shown"), [(False, False), (True, True)])
def test_the_system_message_is_shown_to_staff_only(client, alice, builtin_roles, staff, shown):
    alice.is_staff = staff
    alice.save(update_fields=["is_staff"])
    client.force_login(alice)
    conversation = conversation_create(owner=alice)
    question = add(conversation, "user", "Hello there", 1)
    reply = add(
        conversation, "assistant", "Hi", 1, sent={"system": "OPERATOR PROMPT", "messages": [question.pk]}
    )

    html = client.get(f"/replies/{reply.pk}/sent/").content.decode()

    assert ("OPERATOR PROMPT" in html) is shown
    assert "Hello there" in html
