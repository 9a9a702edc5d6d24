"""What no longer fits the model's context window is summarised by the model after the
reply that left it out, and the next reply is sent the summary in its place; the page
marks where the summarised messages end."""

import pytest
from asgiref.sync import sync_to_async

from conversations import summaries
from conversations.context import summary_block
from conversations.models import Conversation, Message
from conversations.selectors import context_messages, context_system, message_page
from conversations.sending import message_send
from conversations.services import conversation_create
from conversations.token_count import MESSAGE_FRAMING, message_tokens_estimate, text_tokens_estimate
from tests.conftest import wait_for_reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def summaries_on(settings):
    settings.CHAT_SUMMARIES = True  # off for the rest of the suite (tests/environment.py)


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

    # After what is summarised, as many as fit, oldest first; not ending on a question.
    assert part == written[2:4]


def test_a_message_bigger_than_a_whole_request_is_summarised_from_its_beginning(
    alice, builtin_roles, settings
):
    settings.CHAT_REPLY_TOKENS = 0
    conversation = conversation_create(owner=alice)
    huge = Message.objects.create(conversation=conversation, author="user", content="long " * 3000, turn=1)
    after = Message.objects.create(conversation=conversation, author="user", content="Next", turn=2)

    _conversation, part = summaries.summary_part(
        conversation_id=conversation.pk, first_sent=after.pk, window=summaries.PROMPT_TOKENS + 300
    )

    assert [m.pk for m in part] == [huge.pk]
    assert part[0].content == ("long " * 3000)[:200]


def test_a_summary_is_held_to_an_eighth_of_the_window():
    wordy = "北京" * 5000  # no spaces to count words by

    summary = summaries.summary_from_model(wordy, window=8000)

    assert text_tokens_estimate(summary) <= 1000 + 2
    assert summary.endswith("…")


def test_replies_whose_question_is_summarised_go_on_from_the_summary(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    written = rounds(conversation, 2)

    fitted = context_messages(
        conversation=conversation,
        budget=10_000,
        after_id=written[0].pk,  # the summary took the question
    )

    assert fitted.messages == written[1:]
    assert fitted.cut is False


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


def test_the_mark_is_shown_once_on_the_page_where_the_summarised_messages_end(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    written = rounds(conversation, 50)  # 100 messages: three pages of 40
    Conversation.objects.filter(pk=conversation.pk).update(summary=SUMMARY, summary_until=written[9].pk)
    conversation.refresh_from_db()

    latest = message_page(conversation=conversation)
    middle = message_page(conversation=conversation, before=latest.messages[0].pk)
    first = message_page(conversation=conversation, before=middle.messages[0].pk)

    assert latest.summary is None and middle.summary is None
    assert first.summary is not None and first.summary.before_id == written[10].pk


def test_the_mark_is_at_the_top_of_a_page_that_starts_right_after_the_summary(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    written = rounds(conversation, 25)  # 50 messages: the latest 40 start at written[10]
    Conversation.objects.filter(pk=conversation.pk).update(summary=SUMMARY, summary_until=written[9].pk)
    conversation.refresh_from_db()

    page = message_page(conversation=conversation)

    assert page.messages[0] == written[10]
    assert page.summary is not None and page.summary.before_id == written[10].pk
