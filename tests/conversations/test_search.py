import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations import search, search_index
from conversations.models import Conversation, Message
from conversations.search import conversation_title_search, message_search, snippet_make
from conversations.selectors import conversation_summaries
from conversations.services import conversation_create
from roles.models import Role
from tests.conftest import postgres_only, sqlite_only

pytestmark = pytest.mark.django_db


def say(conversation: Conversation, content: str, author: str = "user", **fields) -> Message:
    return Message.objects.create(conversation=conversation, author=author, content=content, turn=1, **fields)


@pytest.fixture
def chat(alice, builtin_roles) -> Conversation:
    return conversation_create(owner=alice, role_slug="teacher", title="Homework")


def found(owner, query: str) -> list[int]:
    return [hit.message_id for hit in message_search(owner=owner, query=query)]


def test_a_word_is_found_in_any_case_with_the_match_marked(alice, chat):
    message = say(chat, "How do I sort a List in Python?")
    say(chat, "Something else entirely")

    [hit] = message_search(owner=alice, query="python")

    assert (hit.message_id, hit.conversation_id, hit.conversation_title) == (message.pk, chat.pk, "Homework")
    assert hit.snippet.text == "How do I sort a List in Python?"
    assert [hit.snippet.text[a:b] for a, b in hit.snippet.highlights] == ["Python"]


@pytest.mark.parametrize(
    "query",
    [
        "学习列表",  # four characters: through the trigram index
        "列表",  # two: shorter than a trigram, scanned
        "Python 列表",  # one of each
    ],
)
def test_chinese_is_found_without_spaces_between_words(alice, chat, query):
    message = say(chat, "我们今天学习列表和Python的字典。")
    say(chat, "明天学习别的东西")

    assert found(alice, query) == [message.pk]


def test_every_word_must_be_in_the_message(alice, chat):
    both = say(chat, "the zebra and the giraffe")
    say(chat, "only a zebra")
    say(chat, "only a giraffe")

    assert found(alice, "giraffe zebra") == [both.pk]
    assert found(alice, "zebra elephant") == []


def test_short_words_are_required_too(alice, chat):
    with_ai = say(chat, "an AI that draws zebras")
    say(chat, "a person who draws zebras")

    assert found(alice, "zebras AI") == [with_ai.pk]


def test_the_index_follows_edits_and_deletes(alice, chat):
    message = say(chat, "a note about walruses")
    assert found(alice, "walrus") == [message.pk]

    message.content = "a note about penguins"
    message.save()
    assert found(alice, "walrus") == []
    assert found(alice, "penguin") == [message.pk]

    # A reply's other fields change often (status, timings): the text is still found.
    Message.objects.filter(pk=message.pk).update(status=Message.Status.STOPPED)
    assert found(alice, "penguin") == [message.pk]

    message.delete()
    assert found(alice, "penguin") == []


def test_a_superseded_version_is_not_found(alice, chat):
    question = say(chat, "Tell me a fact")
    say(chat, "The old walrus fact", author="assistant", reply_to=question, superseded=True)
    current = say(chat, "The new walrus fact", author="assistant", reply_to=question)

    assert found(alice, "walrus") == [current.pk]


def test_nobody_finds_another_users_messages(alice, bob, chat):
    say(chat, "alice's secret walrus plan")
    bobs = conversation_create(owner=bob, role_slug="teacher", title="walrus plans")
    own = say(bobs, "bob's walrus plan")

    assert found(bob, "walrus") == [own.pk]
    assert found(bob, "secret") == []
    assert found(bob, "se") == []  # a short word: the scanned path
    assert found(bob, "walrus se") == []  # both
    assert len(found(alice, "se")) == len(found(alice, "walrus se")) == 1  # which find Alice's for her
    assert [t.conversation.pk for t in conversation_title_search(owner=bob, query="Homework")] == []


@pytest.mark.parametrize(
    "query",
    [
        '"walrus',
        'walrus" OR "zebra',
        "NEAR(walrus zebra)",
        "walrus*",
        "content:walrus",
        "^walrus",
        "(",
        "-",
        "%",
        "_",
    ],
)
def test_search_syntax_in_a_query_is_taken_literally(alice, chat, query):
    say(chat, "walrus")
    literal = say(chat, f"it says {query} here")

    assert found(alice, query) == [literal.pk]


def test_the_message_with_more_of_the_word_ranks_first(alice, chat):
    often = say(chat, "walrus walrus walrus")  # the older: newest first would put it last
    once = say(chat, "a walrus sat on a long rock in the cold sea near the old harbour wall")

    assert found(alice, "walrus") == [often.pk, once.pk]


def test_a_title_is_found_with_its_match_marked(alice, chat):
    chat.title = "Trip to 北京 in May"
    chat.save()
    conversation_create(owner=alice, role_slug="teacher", title="Other")

    [hit] = conversation_title_search(owner=alice, query="北京")

    assert hit.conversation.pk == chat.pk
    assert hit.snippet.text == "Trip to 北京 in May"
    assert [hit.snippet.text[a:b] for a, b in hit.snippet.highlights] == ["北京"]


def test_the_conversation_list_filters_by_title_or_message_text(alice, builtin_roles):
    by_title = conversation_create(owner=alice, role_slug="teacher", title="Walrus facts")
    by_text = conversation_create(owner=alice, role_slug="teacher", title="Animals")
    say(by_text, "what does a walrus eat?")
    neither = conversation_create(owner=alice, role_slug="teacher", title="Cooking")
    say(neither, "pasta")

    listed = {c.pk for c in conversation_summaries(owner=alice, query="walrus")}
    scanned = {c.pk for c in conversation_summaries(owner=alice, query="wa")}  # a short word: scanned

    assert listed == {by_title.pk, by_text.pk}
    assert scanned == {by_title.pk, by_text.pk}


def test_a_query_of_no_words_finds_nothing(alice, chat):
    say(chat, "anything")

    assert message_search(owner=alice, query="   ") == []
    assert list(conversation_summaries(owner=alice, query=" ")) != []  # no filter: the whole list


def test_a_snippet_of_a_long_message_is_the_text_around_the_first_match():
    text = "word " * 100 + "the Walrus\n\nsat   here " + "more " * 100

    snippet = snippet_make(text, ["walrus", "sat"])

    assert snippet.text.startswith("…") and snippet.text.endswith("…")
    assert "the Walrus sat here" in snippet.text  # on one line
    assert [snippet.text[a:b] for a, b in snippet.highlights] == ["Walrus", "sat"]
    assert len(snippet.text) <= 3 * search.SNIPPET_CONTEXT + 2


@pytest.mark.parametrize(
    ("text", "word", "marked"),
    [
        ("Die Straße ist lang", "STRASSE", []),
        ("Die Straße ist lang", "straße", ["Straße"]),
        ("İstanbul python", "python", ["python"]),
        ("İİİ python İ", "PYTHON", ["python"]),
    ],
)
def test_a_snippet_marks_the_words_in_text_whose_case_folds_longer(text, word, marked):
    snippet = snippet_make(text, [word])

    assert [snippet.text[a:b] for a, b in snippet.highlights] == marked


def test_a_control_character_in_a_query_is_a_space(alice, chat):
    message = say(chat, "the walrus sleeps")

    assert found(alice, "walrus\x00") == found(alice, "walrus\x00sleeps") == [message.pk]
    assert found(alice, "walrus\x00zebra") == []


@pytest.mark.django_db(transaction=True)
def test_messages_written_before_the_index_existed_are_found(alice, builtin_roles):
    executor = MigrationExecutor(connection)
    state = executor.migrate([("conversations", "0011_attachment")])
    try:
        # The conversation and message as that schema had them (today's models have
        # columns it lacked).
        old = state.apps.get_model("conversations", "Conversation").objects.create(
            owner_id=alice.pk, role_id=Role.objects.get(slug="teacher").pk, title="Old"
        )
        before = state.apps.get_model("conversations", "Message").objects.create(
            conversation_id=old.pk, author="user", content="written before search existed: narwhal", turn=1
        )
    finally:  # the rest of the suite has the index whatever happens here
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())  # every app: going back took sharing's back too

    assert found(alice, "narwhal") == [before.pk]


def _triggers() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return {name for (name,) in cursor.fetchall()}


@sqlite_only
@pytest.mark.django_db(transaction=True)
def test_migrate_makes_the_index_whole_again_after_a_table_rebuild_dropped_its_triggers(alice, builtin_roles):
    chat = conversation_create(owner=alice, role_slug="teacher", title="Rebuilt")
    # What Django's SQLite backend does to alter a column (AlterField, most AddFields): a
    # new table, the old dropped, and its triggers with it (SQLite's schema editor only).
    with connection.schema_editor() as editor:
        editor._remake_table(Message)  # type: ignore[attr-defined]
    assert not _triggers() & set(search_index.TRIGGERS)
    unindexed = say(chat, "said while the triggers were gone: narwhal")

    call_command("migrate", verbosity=0)

    assert set(search_index.TRIGGERS) <= _triggers()
    assert found(alice, "narwhal") == [unindexed.pk]
    assert found(alice, "narwhal tusk") == []
    later = say(chat, "and the narwhal tusk")
    assert found(alice, "narwhal tusk") == [later.pk]


def test_the_pairs_of_a_text_are_its_adjacent_letters_or_digits_lower_cased_once_each():
    assert search_index.text_pairs("北京, AI 北京!") == "ai 北京"
    assert search_index.text_pairs("Go2go") == "2g go o2"
    assert search_index.text_pairs("a") == search_index.text_pairs("") == search_index.text_pairs(None) == ""


def pairs_indexed(pair: str) -> list[int]:
    """The messages the pair index says hold `pair`."""
    with connection.cursor() as cursor:
        table = search_index.PAIRS_TABLE
        cursor.execute(f"SELECT rowid FROM {table} WHERE {table} MATCH %s ORDER BY rowid", [f'"{pair}"'])
        return [rowid for (rowid,) in cursor.fetchall()]


@sqlite_only
def test_the_pair_index_follows_writes_edits_and_deletes(alice, chat):
    message = say(chat, "我们在北京")
    assert pairs_indexed("北京") == [message.pk]

    message.content = "我们在上海"
    message.save()
    assert pairs_indexed("北京") == []
    assert pairs_indexed("上海") == [message.pk]
    assert found(alice, "上海") == [message.pk]

    message.delete()
    assert pairs_indexed("上海") == []
    assert found(alice, "上海") == []


def test_two_letter_words_are_found_through_the_pair_index_newest_first(alice, chat):
    older = say(chat, "An AI that draws")
    newer = say(chat, "ai again")
    say(chat, "nothing of the kind")

    assert search._index_table(["AI"]) == search.PAIRS_TABLE
    assert found(alice, "ai") == [newer.pk, older.pk]
    assert found(alice, "AI dr") == [older.pk]  # two pairs: both required
    assert found(alice, "ai a") == [newer.pk, older.pk]  # one letter: checked among the pairs' finds


@postgres_only
def test_on_postgresql_a_word_is_looked_up_in_pg_trgms_index(alice, chat):
    say(chat, "How do I sort a List in Python?")
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a tiny table: the planner would read it all
        holding = Message.objects.filter(search._holding("content", ["python", "学习列表"]))
        sql, params = holding.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")

    assert "conversations_message_content_trgm" in plan
