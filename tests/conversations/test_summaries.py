"""What no longer fits the model's context window is summarised by the model after the
reply that left it out, and the next reply is sent the summary in its place; the page
marks where the summarised messages end."""

import pytest
from asgiref.sync import sync_to_async

from conversations import summaries
from conversations.context import summary_block
from conversations.models import Conversation, Message
from conversations.selectors import context_system, message_page
from conversations.sending import message_send
from conversations.services import conversation_create
from conversations.token_count import MESSAGE_FRAMING, message_tokens_estimate, text_tokens_estimate
from tests.conftest import wait_for_reply

pytestmark = pytest.mark.django_db(transaction=True)

SUMMARY = "The user plans a trip to Kyoto in April with two children."
SUMMARY_LATER = "The user plans a trip to Kyoto in April with two children, by train."


def rounds(conversation: Conversation, count: int, start: int = 0) -> list[Message]:
    written = []
    for n in range(start, start + count):
        question = Message.objects.create(
            conversation=conversation, author="user", content=f"Question {n}: " + "word " * 60, turn=n + 1
        )
        answer = Message.objects.create(
            conversation=conversation,
            author="assistant",
            content=f"Answer {n}: " + "word " * 60,
            turn=n + 1,
            reply_to=question,
        )
        written += [question, answer]
    return written


def window_for(conversation: Conversation, sent: list[Message], question: str, extra: str = "") -> int:
    """Room for the system message (with `extra`), `question` and `sent`, and not one more round."""
    system = text_tokens_estimate(context_system(conversation=conversation).content + extra)
    return (
        system
        + text_tokens_estimate(question)
        + MESSAGE_FRAMING
        + sum(map(message_tokens_estimate, sent))
        + 10
    )


async def test_what_a_reply_left_out_is_summarised_and_the_next_reply_is_sent_the_summary(
    alice, builtin_roles, fake_openai, settings
):
    settings.CHAT_REPLY_TOKENS = 0
    conversation = await sync_to_async(conversation_create)(owner=alice, role_slug="teacher")
    written = await sync_to_async(rounds)(conversation, 5)
    settings.OPENAI_CONTEXT_WINDOW = await sync_to_async(window_for)(conversation, written[-4:], "First?")
    fake_openai.queue_text("A first answer.")
    fake_openai.queue_text(SUMMARY)

    first = await message_send(owner=alice, conversation_id=conversation.pk, content="First?")
    await wait_for_reply(first.reply.pk)
    await summaries.summaries_written()

    # The summary request: the oldest of the three rounds left out, as many as one
    # request of this small window holds (two).
    summary_request = fake_openai.requests[-1].body["messages"]
    assert summary_request[0] == {"role": "system", "content": summaries.INSTRUCTION}
    assert summary_request[1]["content"] == (
        "\n\n".join(f"{'User' if m.author == 'user' else 'Assistant'}: {m.content}" for m in written[:4])
        + "\n\nSummary:"
    )
    saved = await Conversation.objects.aget(pk=conversation.pk)
    assert (saved.summary, saved.summary_until) == (SUMMARY, written[3].pk)

    # The next reply: the summary in the system message, then the newest rounds that fit
    # after what it covers (one round between them is still left out).
    note = summary_block(SUMMARY)
    settings.OPENAI_CONTEXT_WINDOW = await sync_to_async(window_for)(
        conversation, [*written[-4:], first.user_message, first.reply], "Second?", "\n\n" + note
    )
    fake_openai.queue_text("A second answer.")
    fake_openai.queue_text(SUMMARY_LATER)
    second = await message_send(owner=alice, conversation_id=conversation.pk, content="Second?")
    await wait_for_reply(second.reply.pk)
    await summaries.summaries_written()
    [second_request] = [
        r.body["messages"] for r in fake_openai.requests if r.body["messages"][-1]["content"] == "Second?"
    ]

    system = await sync_to_async(context_system)(conversation=saved)
    reply_text = (await Message.objects.aget(pk=first.reply.pk)).content
    assert second_request == [
        {"role": "system", "content": f"{system.content}\n\n{note}"},
        *({"role": m.author, "content": m.content} for m in written[-4:]),
        {"role": "user", "content": "First?"},
        {"role": "assistant", "content": reply_text},
        {"role": "user", "content": "Second?"},
    ]
    recorded = (await Message.objects.aget(pk=second.reply.pk)).sent or {}
    assert (recorded["summary"], recorded["cut"]) == (SUMMARY, True)

    # Refreshed: the earlier summary and the round still left out, merged.
    assert fake_openai.requests[-1].body["messages"][1]["content"].startswith(f"Earlier summary: {SUMMARY}")
    saved = await Conversation.objects.aget(pk=conversation.pk)
    assert (saved.summary, saved.summary_until) == (SUMMARY_LATER, written[5].pk)


async def test_with_summaries_off_nothing_is_summarised(alice, builtin_roles, fake_openai, settings):
    settings.CHAT_REPLY_TOKENS = 0
    settings.CHAT_SUMMARIES = False
    conversation = await sync_to_async(conversation_create)(owner=alice, role_slug="teacher")
    written = await sync_to_async(rounds)(conversation, 4)
    settings.OPENAI_CONTEXT_WINDOW = await sync_to_async(window_for)(conversation, written[-2:], "Hi?")

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Hi?")
    await wait_for_reply(exchange.reply.pk)
    await summaries.summaries_written()

    assert len(fake_openai.requests) == 1
    assert (await Conversation.objects.aget(pk=conversation.pk)).summary == ""


def test_a_summary_part_is_the_oldest_left_out_messages_that_fit_one_request(alice, builtin_roles, settings):
    settings.CHAT_REPLY_TOKENS = 0
    conversation = conversation_create(owner=alice)
    written = rounds(conversation, 6)
    Conversation.objects.filter(pk=conversation.pk).update(summary="Before.", summary_until=written[1].pk)
    room = (
        summaries.PROMPT_TOKENS
        + text_tokens_estimate("Before.")
        + sum(map(message_tokens_estimate, written[2:5]))
    )

    _conversation, part = summaries.summary_part(
        conversation_id=conversation.pk, first_sent=written[10].pk, window=room
    )

    assert part == written[2:5]  # after what is summarised; as many as fit, oldest first


def test_a_summary_saved_meanwhile_is_not_overwritten(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    Conversation.objects.filter(pk=conversation.pk).update(summary="Newer.", summary_until=40)

    saved = summaries.summary_save(
        conversation_id=conversation.pk, previous_until=20, summary="Older.", until=30
    )

    assert saved is False
    assert Conversation.objects.get(pk=conversation.pk).summary == "Newer."


def test_the_page_marks_where_the_summarised_messages_end(alice, builtin_roles, client):
    conversation = conversation_create(owner=alice)
    written = rounds(conversation, 3)
    Conversation.objects.filter(pk=conversation.pk).update(summary=SUMMARY, summary_until=written[1].pk)
    conversation.refresh_from_db()
    client.force_login(alice)

    page = message_page(conversation=conversation)
    html = client.get(f"/c/{conversation.pk}/").content.decode()

    assert page.summary is not None and page.summary.before_id == written[2].pk
    marker = html.index('<details class="summary-marker">')
    assert html.index(f'id="msg-{written[1].pk}"') < marker < html.index(f'id="msg-{written[2].pk}"')
    assert SUMMARY in html
