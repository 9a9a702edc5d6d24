"""The conversation as a tree: editing any question or regenerating any reply starts a
branch from there, nothing is deleted, ‹ 2/3 › steps between the versions of a turn, and
only the branch shown is sent upstream."""

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations.branches import branch_select
from conversations.errors import ChatError
from conversations.export import as_json, as_markdown
from conversations.models import Conversation, Message
from conversations.selectors import conversation_get_for_export, message_branches, message_list, message_page
from conversations.sending import message_edit, message_send, reply_regenerate
from conversations.services import conversation_create, reply_stop
from roles.models import Role
from tests.conftest import wait_for_reply
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

acreate = database_sync_to_async(conversation_create)
aselect = sync_to_async(branch_select)


async def send(user, conversation, text):
    exchange = await message_send(owner=user, conversation_id=conversation.pk, content=text)
    await wait_for_reply(exchange.reply.pk)
    return exchange


async def shown(conversation) -> list[str]:
    return [m.content for m in await sync_to_async(message_list)(conversation=conversation)]


async def ten_turns(user) -> tuple[Conversation, list]:
    conversation = await acreate(owner=user, role_slug="assistant")
    return conversation, [await send(user, conversation, f"q{n}") for n in range(1, 11)]


async def edited(user, conversation, message, text):
    """Edit `message` (a question shown) to `text`, and wait for its reply."""
    exchange = await message_edit(
        owner=user, conversation_id=conversation.pk, content=text, message_id=message.pk
    )
    await wait_for_reply(exchange.reply.pk)
    return exchange


def upstream(fake_openai) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in fake_openai.last_messages()]


async def test_a_branch_edited_at_turn_3_of_10_sends_turns_1_and_2_then_the_edit(
    alice, builtin_roles, fake_openai
):
    conversation, turns = await ten_turns(alice)

    exchange = await edited(alice, conversation, turns[2].user_message, "q3, better")

    assert upstream(fake_openai) == [
        ("system", conversation.system_prompt),
        ("user", "q1"),
        ("assistant", "Echo: q1"),
        ("user", "q2"),
        ("assistant", "Echo: q2"),
        ("user", "q3, better"),
    ]
    assert await shown(conversation) == ["q1", "Echo: q1", "q2", "Echo: q2", "q3, better", "Echo: q3, better"]
    # Nothing is deleted: the old branch (turns 3 to 10) is set aside whole.
    assert await Message.objects.filter(conversation=conversation).acount() == 22
    assert await Message.objects.filter(conversation=conversation, superseded=True).acount() == 16
    assert (exchange.user_message.turn, exchange.user_message.parent_id) == (3, turns[1].reply.pk)


async def test_the_next_message_on_a_new_branch_follows_it_and_is_sent_it(alice, builtin_roles, fake_openai):
    conversation, turns = await ten_turns(alice)
    edit = await edited(alice, conversation, turns[2].user_message, "q3, better")

    after = await send(alice, conversation, "q4 on the new branch")

    assert [content for _role, content in upstream(fake_openai)[1:]] == [
        "q1",
        "Echo: q1",
        "q2",
        "Echo: q2",
        "q3, better",
        "Echo: q3, better",
        "q4 on the new branch",
    ]
    assert (after.user_message.turn, after.user_message.parent_id) == (4, edit.reply.pk)


async def test_regenerating_an_earlier_reply_answers_its_question_again_with_what_came_before(
    alice, builtin_roles, fake_openai
):
    conversation, turns = await ten_turns(alice)
    fake_openai.queue_reply(Reply(tokens=["Another", " answer"]))

    exchange = await reply_regenerate(
        owner=alice, conversation_id=conversation.pk, reply_id=turns[4].reply.pk
    )
    reply = await wait_for_reply(exchange.reply.pk)

    assert [content for _role, content in upstream(fake_openai)[1:]] == [
        "q1", "Echo: q1", "q2", "Echo: q2", "q3", "Echo: q3", "q4", "Echo: q4", "q5",
    ]  # fmt: skip
    assert reply.content == "Another answer"
    assert exchange.user_message.pk == turns[4].user_message.pk
    assert (await shown(conversation))[-2:] == ["q5", "Another answer"]
    assert len(await shown(conversation)) == 10


async def test_each_version_of_a_turn_counts_its_siblings(alice, builtin_roles, fake_openai):
    conversation, turns = await ten_turns(alice)
    question = shown_question = turns[2].user_message
    for text in ["q3 again", "q3 once more"]:
        shown_question = (await edited(alice, conversation, shown_question, text)).user_message

    page = await sync_to_async(message_page)(conversation=conversation)

    [third] = [m for m in page.messages if m.content == "q3 once more"]
    branch = page.branches[third.pk]
    assert (branch.index, len(branch.ids), branch.next) == (2, 3, None)
    assert branch.ids[0] == question.pk
    # Only the edited turn has versions: its reply and the turns before it have none.
    assert set(page.branches) == {third.pk}


async def test_choosing_an_old_version_shows_its_branch_down_to_where_it_was_left(
    alice, builtin_roles, fake_openai
):
    conversation, turns = await ten_turns(alice)
    edit = await edited(alice, conversation, turns[2].user_message, "q3, better")

    await aselect(owner=alice, conversation_id=conversation.pk, message_id=turns[2].user_message.pk)

    assert await shown(conversation) == [text for n in range(1, 11) for text in (f"q{n}", f"Echo: q{n}")]
    await aselect(owner=alice, conversation_id=conversation.pk, message_id=edit.user_message.pk)
    assert (await shown(conversation))[4:] == ["q3, better", "Echo: q3, better"]


async def test_going_back_to_a_version_shows_below_it_the_branch_where_it_was_left(
    alice, builtin_roles, fake_openai
):
    conversation, turns = await ten_turns(alice)
    # On the first branch, turn 10's reply was regenerated, and the user went back to the
    # first version and went on from it.
    fake_openai.queue_reply(Reply(tokens=["Second version"]))
    regenerated = await reply_regenerate(owner=alice, conversation_id=conversation.pk)
    await wait_for_reply(regenerated.reply.pk)
    await aselect(owner=alice, conversation_id=conversation.pk, message_id=turns[9].reply.pk)
    went_on = await send(alice, conversation, "q11 after the first version")
    await edited(alice, conversation, turns[2].user_message, "q3, better")

    await aselect(owner=alice, conversation_id=conversation.pk, message_id=turns[2].user_message.pk)

    # Not the newest reply to q10 ("Second version"): the one the user went on from.
    assert (await shown(conversation))[-4:] == [
        "q10",
        "Echo: q10",
        "q11 after the first version",
        "Echo: q11 after the first version",
    ]
    assert went_on.user_message.parent_id == turns[9].reply.pk


async def test_the_first_question_can_be_edited_and_has_versions_too(alice, builtin_roles, fake_openai):
    conversation, turns = await ten_turns(alice)

    edit = await edited(alice, conversation, turns[0].user_message, "q1, better")

    assert upstream(fake_openai) == [("system", conversation.system_prompt), ("user", "q1, better")]
    assert edit.user_message.parent_id is None
    page = await sync_to_async(message_page)(conversation=conversation)
    assert page.branches[edit.user_message.pk].ids == [turns[0].user_message.pk, edit.user_message.pk]


async def test_a_message_off_the_branch_shown_cannot_be_redone(alice, builtin_roles, fake_openai):
    conversation, turns = await ten_turns(alice)
    await edited(alice, conversation, turns[2].user_message, "q3, better")
    count = await Message.objects.acount()

    with pytest.raises(ChatError) as refused:
        await reply_regenerate(owner=alice, conversation_id=conversation.pk, reply_id=turns[6].reply.pk)
    with pytest.raises(ChatError) as refused_edit:
        await message_edit(
            owner=alice, conversation_id=conversation.pk, content="x", message_id=turns[6].user_message.pk
        )

    assert (refused.value.code, refused_edit.value.code) == ("invalid_target", "invalid_target")
    assert await Message.objects.acount() == count
    assert len(await shown(conversation)) == 6


async def test_a_reply_is_not_edited_and_a_question_not_regenerated(alice, builtin_roles, fake_openai):
    conversation, turns = await ten_turns(alice)

    with pytest.raises(ChatError) as edit_reply:
        await message_edit(
            owner=alice, conversation_id=conversation.pk, content="x", message_id=turns[1].reply.pk
        )
    with pytest.raises(ChatError) as regenerate_question:
        await reply_regenerate(
            owner=alice, conversation_id=conversation.pk, reply_id=turns[1].user_message.pk
        )

    assert {edit_reply.value.code, regenerate_question.value.code} == {"invalid_target"}
    assert len(await shown(conversation)) == 20


async def test_another_conversations_message_is_not_a_version_here(alice, builtin_roles, fake_openai):
    conversation, _turns = await ten_turns(alice)
    other = await acreate(owner=alice, role_slug="assistant")
    elsewhere = await send(alice, other, "elsewhere")

    with pytest.raises(Message.DoesNotExist):
        await aselect(owner=alice, conversation_id=conversation.pk, message_id=elsewhere.reply.pk)
    with pytest.raises(ChatError):
        await reply_regenerate(owner=alice, conversation_id=conversation.pk, reply_id=elsewhere.reply.pk)

    assert len(await shown(other)) == 2


async def test_no_branch_is_chosen_while_a_reply_is_being_written(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice, role_slug="assistant")
    first = await send(alice, conversation, "one")
    await wait_for_reply((await reply_regenerate(owner=alice, conversation_id=conversation.pk)).reply.pk)
    fake_openai.queue_reply(Reply(tokens=["slow"], hang_after_tokens=1))
    running = await message_send(owner=alice, conversation_id=conversation.pk, content="two")

    with pytest.raises(ChatError) as refused:
        await aselect(owner=alice, conversation_id=conversation.pk, message_id=first.reply.pk)

    assert refused.value.code == "reply_in_progress"
    await reply_stop(owner=alice, conversation_id=conversation.pk)
    await wait_for_reply(running.reply.pk)
    assert (await shown(conversation))[-2:] == ["two", "slow"]


def rounds_with_summary(conversation: Conversation, count: int, until_turn: int) -> list[Message]:
    written: list[Message] = []
    parent = None
    for n in range(1, count + 1):
        question = Message.objects.create(
            conversation=conversation, author="user", content=f"q{n}", turn=n, parent=parent
        )
        parent = Message.objects.create(
            conversation=conversation,
            author="assistant",
            content=f"a{n}",
            turn=n,
            parent=question,
            reply_to=question,
        )
        written += [question, parent]
    conversation.summary, conversation.summary_until = (
        "What turns 1 to 4 said.",
        written[2 * until_turn - 1].pk,
    )
    conversation.save(update_fields=["summary", "summary_until"])
    return written


@pytest.mark.parametrize(
    ("turn", "kept"),
    [(3, False), (4, False), (5, True), (6, True)],
    ids=["inside", "its-last-turn", "the-turn-after", "later"],
)
def test_a_summary_goes_when_the_branch_changes_inside_what_it_covers(alice, builtin_roles, turn, kept):
    conversation = conversation_create(owner=alice, role_slug="assistant")
    written = rounds_with_summary(conversation, 6, until_turn=4)
    sibling = Message.objects.create(
        conversation=conversation,
        author="user",
        content="another question",
        turn=turn,
        parent=written[2 * turn - 3] if turn > 1 else None,
        superseded=True,
    )

    branch_select(owner=alice, conversation_id=conversation.pk, message_id=sibling.pk)

    conversation.refresh_from_db()
    assert bool(conversation.summary) is kept
    assert (conversation.summary_until is not None) is kept


def test_choosing_the_version_already_shown_changes_nothing(alice, builtin_roles):
    conversation = conversation_create(owner=alice, role_slug="assistant")
    written = rounds_with_summary(conversation, 6, until_turn=4)

    branch_select(owner=alice, conversation_id=conversation.pk, message_id=written[2].pk)

    conversation.refresh_from_db()
    assert conversation.summary_until == written[7].pk
    assert [m.pk for m in message_list(conversation=conversation)] == [m.pk for m in written]


def test_the_branches_of_a_page_are_read_in_one_query(alice, builtin_roles, django_assert_num_queries):
    conversation = conversation_create(owner=alice, role_slug="assistant")
    messages = rounds_with_summary(conversation, 20, until_turn=1)

    with django_assert_num_queries(1):
        branches = message_branches(conversation=conversation, messages=messages)

    assert branches == {}


@pytest.mark.django_db(transaction=True)
def test_the_versions_of_turns_before_the_tree_become_its_branches(alice, builtin_roles):
    executor = MigrationExecutor(connection)
    state = executor.migrate([("conversations", "0021_conversation_summary")])
    try:
        old = state.apps.get_model("conversations", "Conversation").objects.create(
            owner_id=alice.pk, role_id=Role.objects.get(slug="teacher").pk, title="Before branches"
        )
        OldMessage = state.apps.get_model("conversations", "Message")

        def write(author, content, turn, reply_to=None, superseded=False):
            return OldMessage.objects.create(
                conversation_id=old.pk,
                author=author,
                content=content,
                turn=turn,
                reply_to_id=reply_to,
                superseded=superseded,
            ).pk

        # Turn 1 was regenerated before turn 2 was sent; turn 2 was edited once (its first
        # version set aside), then regenerated.
        q1 = write("user", "q1", 1)
        a1_old = write("assistant", "a1 old", 1, reply_to=q1, superseded=True)
        a1 = write("assistant", "a1", 1, reply_to=q1)
        q2_old = write("user", "q2 old", 2, superseded=True)
        a2_old = write("assistant", "a2 old", 2, reply_to=q2_old, superseded=True)
        q2 = write("user", "q2", 2)
        a2_first = write("assistant", "a2 first", 2, reply_to=q2, superseded=True)
        a2 = write("assistant", "a2", 2, reply_to=q2)
    finally:  # the rest of the suite has today's schema whatever happens here
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())  # every app's latest

    parents = dict(Message.objects.filter(conversation_id=old.pk).values_list("id", "parent_id"))
    assert parents == {
        q1: None,
        a1_old: q1,
        a1: q1,
        q2_old: a1,
        a2_old: q2_old,
        q2: a1,
        a2_first: q2,
        a2: q2,
    }
    conversation = Conversation.objects.get(pk=old.pk)
    page = message_page(conversation=conversation)
    assert [m.content for m in page.messages] == ["q1", "a1", "q2", "a2"]
    assert {pk: (b.index, len(b.ids)) for pk, b in page.branches.items()} == {
        a1: (1, 2),
        q2: (1, 2),
        a2: (1, 2),
    }


def test_markdown_exports_the_branch_shown_and_json_every_branch(alice, builtin_roles):
    conversation = conversation_create(owner=alice, role_slug="assistant")
    written = rounds_with_summary(conversation, 2, until_turn=1)
    set_aside = Message.objects.create(
        conversation=conversation,
        author="assistant",
        content="an answer set aside",
        turn=2,
        parent=written[2],
        reply_to=written[2],
        superseded=True,
    )
    exported = conversation_get_for_export(owner=alice, conversation_id=conversation.pk)

    markdown, document = as_markdown(exported), as_json(exported)

    assert "a2" in markdown and "an answer set aside" not in markdown
    listed = {m["id"]: (m["parent_id"], m["superseded"]) for m in document["messages"]}
    assert listed[set_aside.pk] == (written[2].pk, True)
    assert listed[written[3].pk] == (written[2].pk, False)
    assert len(listed) == 5
