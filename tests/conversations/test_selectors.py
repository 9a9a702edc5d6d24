import pytest

from conversations.models import Conversation, Message
from conversations.selectors import (
    chat_message,
    context_messages,
    context_system,
    conversation_get,
    message_page,
)
from conversations.services import conversation_create
from conversations.token_count import MESSAGE_FRAMING, message_tokens_estimate, text_tokens_estimate

pytestmark = pytest.mark.django_db

BUDGET = 8000  # tokens: room for everything these conversations hold


def add(conversation, author, content, status=Message.Status.COMPLETE):
    return Message.objects.create(conversation=conversation, author=author, content=content, status=status)


def sent_history(conversation: Conversation) -> list[dict[str, object]]:
    """The system message and the earlier messages, as the model is sent them."""
    recent = context_messages(conversation=conversation, budget=BUDGET).messages
    return [context_system(conversation=conversation).as_dict(), *(chat_message(m).as_dict() for m in recent)]


def test_context_counts_stopped_and_interrupted_text_as_seen(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    add(conversation, "user", "q1")
    add(conversation, "assistant", "partial one", Message.Status.STOPPED)
    add(conversation, "user", "q2")
    add(conversation, "assistant", "partial two", Message.Status.INTERRUPTED)

    history = sent_history(conversation)

    assert history[1:] == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "partial one"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "partial two"},
    ]


def test_context_leaves_out_failed_replies_without_text(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    add(conversation, "user", "q1")
    add(conversation, "assistant", "", Message.Status.ERROR)

    history = sent_history(conversation)

    assert history[1:] == [{"role": "user", "content": "q1"}]


def test_context_rounds_setting_limits_the_history(alice, builtin_roles, settings):
    settings.CHAT_CONTEXT_ROUNDS = 1
    conversation = conversation_create(owner=alice)
    for n in range(3):
        add(conversation, "user", f"q{n}")
        add(conversation, "assistant", f"a{n}")

    history = sent_history(conversation)

    assert history[1:] == [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]


def test_get_refuses_another_owner(alice, bob, builtin_roles):
    conversation = conversation_create(owner=alice)

    with pytest.raises(Conversation.DoesNotExist):
        conversation_get(owner=bob, conversation_id=conversation.pk)


def test_get_treats_a_malformed_id_as_missing(alice):
    with pytest.raises(Conversation.DoesNotExist):
        conversation_get(owner=alice, conversation_id="not-a-uuid")


def numbered(conversation, count):
    return [add(conversation, Message.Author.USER, f"Message {n}") for n in range(count)]


def test_a_page_is_the_latest_messages_oldest_first_with_where_earlier_ones_end(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    written = numbered(conversation, 7)

    page = message_page(conversation=conversation, limit=3)

    assert page.messages == written[4:]
    assert page.older_than == written[4].pk


def test_the_page_before_a_message_ends_where_the_conversation_starts(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    written = numbered(conversation, 7)

    page = message_page(conversation=conversation, before=written[3].pk, limit=3)
    first = message_page(conversation=conversation, before=written[0].pk, limit=3)

    assert page.messages == written[:3]
    assert page.older_than is None
    assert first.messages == []
    assert first.older_than is None


def test_a_page_leaves_out_earlier_versions_of_a_turn(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    question = add(conversation, Message.Author.USER, "Question")
    old = add(conversation, Message.Author.ASSISTANT, "First answer")
    Message.objects.filter(pk=old.pk).update(superseded=True)
    new = add(conversation, Message.Author.ASSISTANT, "Second answer")

    page = message_page(conversation=conversation, limit=2)

    assert page.messages == [question, new]
    assert page.older_than is None


def rounds_of(conversation, count: int, words: int) -> list[Message]:
    """`count` rounds, each a question and an answer of `words` words."""
    written = []
    for n in range(count):
        written.append(add(conversation, "user", f"question {n} " + "word " * words))
        written.append(add(conversation, "assistant", f"answer {n} " + "word " * words))
    return written


def test_context_is_the_newest_whole_rounds_that_fit_the_budget(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    written = rounds_of(conversation, 5, words=50)
    two_rounds = sum(message_tokens_estimate(m) for m in written[-4:])

    fitted = context_messages(conversation=conversation, budget=two_rounds + 10)

    assert fitted.messages == written[-4:]
    assert fitted.cut is True


def test_context_holds_everything_when_it_fits(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    written = rounds_of(conversation, 40, words=3)  # 80 messages: read in two goes

    fitted = context_messages(conversation=conversation, budget=BUDGET)

    assert fitted.messages == written  # more than the 20 rounds sent before
    assert fitted.cut is False


def test_a_round_is_sent_whole_or_not_at_all(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    written = rounds_of(conversation, 2, words=50)
    # Room for the last answer alone, not for its question with it.
    fitted = context_messages(conversation=conversation, budget=message_tokens_estimate(written[-1]) + 1)

    assert fitted.messages == []
    assert fitted.cut is True


def test_a_reply_is_counted_by_the_tokens_its_provider_reported(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    reply = add(conversation, "assistant", "x" * 300)
    Message.objects.filter(pk=reply.pk).update(completion_tokens=7)
    reply.refresh_from_db()

    assert message_tokens_estimate(reply) == 7 + MESSAGE_FRAMING
    assert text_tokens_estimate(reply.content) == 100


@pytest.mark.parametrize(("text", "tokens"), [("", 0), ("abc", 1), ("abcd", 2), ("北京", 3), ("héllo", 3)])
def test_the_estimate_counts_a_token_per_three_ascii_characters_and_one_and_a_half_per_other(text, tokens):
    assert text_tokens_estimate(text) == tokens
