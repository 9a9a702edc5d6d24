from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from conversations import search_postgres
from conversations.models import Conversation, Message
from conversations.search import message_search
from conversations.selectors import conversation_summaries
from conversations.services import conversation_create
from tests.conftest import postgres_only

pytestmark = [pytest.mark.django_db, postgres_only]


def say(conversation: Conversation, content: str) -> Message:
    return Message.objects.create(conversation=conversation, author="user", content=content, turn=1)


def grams(text: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT chatsite_grams(%s)", [text])
        return set(cursor.fetchone()[0])


def test_the_grams_of_a_text_are_each_character_and_pair_beyond_ascii():
    assert grams("在北京 ok 数据") == {"在", "北", "京", "在北", "北京", "数", "据", "数据"}
    assert grams("Plain ASCII, nothing else.") == set()


def test_a_short_word_beyond_ascii_is_looked_up_in_the_grams_index(alice, builtin_roles):
    say(conversation_create(owner=alice, role_slug="teacher", title="t"), "我们在北京")
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a tiny table: the planner would read it all
        holding = Message.objects.filter(search_postgres.holding("content", ["北京"]))
        sql, params = holding.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")

    assert "conversations_message_content_grams" in plan


@pytest.mark.parametrize("word", ["北京", "京", "烤", "A股", "é", "É", "ï", "çA"])
def test_the_grams_index_finds_exactly_what_ilike_finds(alice, builtin_roles, word):
    chat = conversation_create(owner=alice, role_slug="teacher", title="t")
    for text in ["我们在北京", "北京烤鸭", "A股行情", "Café au lait", "ÉCOLE", "naïve", "FAÇADE", "plain"]:
        say(chat, text)
    by_ilike = set(Message.objects.filter(content__ilike=f"%{word}%").values_list("id", flat=True))

    assert by_ilike  # each word is in one of the texts
    assert {hit.message_id for hit in message_search(owner=alice, query=word)} == by_ilike


@pytest.fixture
def short_walk(monkeypatch):
    """A walk of four conversations, two at a time: ten conversations go past its end."""
    monkeypatch.setattr(search_postgres, "WALK_CONVERSATIONS", 4)
    monkeypatch.setattr(search_postgres, "WALK_CHUNK", 2)


@pytest.fixture
def walk_alone(monkeypatch):
    """The index cannot answer (only it reads the owner's messages through
    owned_messages): a test passes only if the walk found what it asserts."""

    def index_used(owner):
        raise AssertionError("the index answered, not the walk")

    monkeypatch.setattr(search_postgres, "owned_messages", index_used)


def active(conversation: Conversation, *, minutes: int) -> None:
    """Last active `minutes` after 2026 began."""
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=at)


# The order the ten conversations were last active in, newest first, by the order they
# were made (and their messages' ids): a search that went by id, or by when a
# conversation was made, would list them in another order.
ACTIVE_ORDER = [3, 8, 0, 5, 9, 1, 6, 2, 4, 7]


@pytest.fixture
def ten(alice, builtin_roles) -> list[Conversation]:
    """Ten conversations, the most recently active first: "common" said in each, "walrus"
    in the two least recently active (the one of them made first was active last)."""
    made = []
    for n in range(10):
        chat = conversation_create(owner=alice, role_slug="teacher", title=f"Chat {n}")
        say(chat, f"common text {n}" + (" walrus" if n in ACTIVE_ORDER[-2:] else ""))
        made.append(chat)
    for place, n in enumerate(ACTIVE_ORDER):
        active(made[n], minutes=len(made) - place)
    return [made[n] for n in ACTIVE_ORDER]


def test_a_common_word_lists_the_most_active_conversations_from_the_walk(alice, short_walk, ten, walk_alone):
    first = conversation_summaries(owner=alice, query="common", limit=3)
    after = conversation_summaries(owner=alice, query="common", limit=3, before=first[-1])

    assert [c.pk for c in first] == [c.pk for c in ten[:3]]
    assert [c.pk for c in after] == [c.pk for c in ten[3:6]]


def test_a_rare_word_past_the_walk_is_listed_through_the_index(alice, short_walk, ten):
    # Past the four conversations the walk reads: only the index finds them.
    assert [c.pk for c in conversation_summaries(owner=alice, query="walrus", limit=1)] == [ten[-2].pk]
    assert [c.pk for c in conversation_summaries(owner=alice, query="walrus", limit=50)] == [
        c.pk for c in ten[-2:]
    ]


def test_a_common_words_hits_come_from_the_most_active_conversations(alice, short_walk, ten, walk_alone):
    newest = search_postgres.newest_message_ids(owner=alice, terms=["common"], count=3)

    assert newest == [chat.messages.get().pk for chat in ten[:3]]


def test_a_rare_words_hits_past_the_walk_are_found_through_the_index(alice, short_walk, ten):
    newest = search_postgres.newest_message_ids(owner=alice, terms=["walrus"], count=200)

    # The more recently active first, though its message is the older one.
    assert newest == [chat.messages.get().pk for chat in ten[-2:]]


@pytest.fixture
def bobs_newer(bob, ten) -> list[Conversation]:
    """Four of Bob's conversations saying Alice's words, more recently active than hers:
    read first by a walk that did not keep to her own."""
    made = []
    for n in range(4):
        chat = conversation_create(owner=bob, role_slug="teacher", title=f"Bob's {n}")
        say(chat, "common walrus")
        active(chat, minutes=100 + n)
        made.append(chat)
    return made


def test_the_walk_reads_only_the_owners_conversations(alice, short_walk, ten, bobs_newer, walk_alone):
    listed = conversation_summaries(owner=alice, query="common", limit=3)
    newest = search_postgres.newest_message_ids(owner=alice, terms=["common"], count=3)

    assert [c.pk for c in listed] == [c.pk for c in ten[:3]]
    assert newest == [chat.messages.get().pk for chat in ten[:3]]


def test_the_index_finds_only_the_owners_conversations(alice, short_walk, ten, bobs_newer):
    listed = conversation_summaries(owner=alice, query="walrus", limit=50)
    newest = search_postgres.newest_message_ids(owner=alice, terms=["walrus"], count=200)

    assert [c.pk for c in listed] == [c.pk for c in ten[-2:]]
    assert newest == [chat.messages.get().pk for chat in ten[-2:]]
