import asyncio

import pytest
from channels.db import database_sync_to_async

from conversations.models import Conversation
from conversations.sending import conversation_start, message_send
from conversations.services import conversation_create, conversation_rename, reply_stop
from conversations.titles import INSTRUCTION, title_from_model, titles_written
from tests.conftest import frames_until, wait_for_reply
from tests.conversations.test_consumers import connect
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def titles_on(settings, fake_openai):
    settings.CHAT_TITLES = True
    return fake_openai


async def started(owner, question: str, *, answer: str, title: str | None, fake) -> Conversation:
    """A new conversation, its first reply complete and the model asked for its title."""
    fake.queue_reply(Reply(tokens=[answer]))
    if title is not None:
        fake.queue_reply(Reply(tokens=[title]))
    exchange = await conversation_start(owner=owner, role_slug="teacher", content=question)
    await wait_for_reply(exchange.reply.pk)
    await titles_written()
    return await Conversation.objects.aget(pk=exchange.conversation.pk)


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ("Capital of France", "Capital of France"),
        ('"Capital of France."', "Capital of France"),
        ("Title: **Capital of France**\n\nThis title sums it up.", "Capital of France"),
        ("标题：法国的首都。", "法国的首都"),
        ("«one two three four five six seven eight»", "«one two three four five six"),
        ("\x02thinking about it\x03Paris facts", "Paris facts"),
        ("   \n\n", ""),
        ("x" * 80, "x" * 49 + "…"),
        ("# Learning C#", "Learning C#"),
        ("Titles of old books", "Titles of old books"),
        ("_snake_case_ tips", "_snake_case_ tips"),
    ],
)
def test_the_models_answer_is_cut_down_to_a_title(answer, title):
    assert title_from_model(answer) == title


async def test_after_the_first_reply_the_model_names_the_conversation(alice, builtin_roles, titles_on):
    conversation = await started(
        alice,
        "What is the capital of France, and why?",
        answer="Paris, since the Middle Ages.",
        title="Capital of France",
        fake=titles_on,
    )

    assert conversation.title == "Capital of France"
    asked = titles_on.requests[-1].body["messages"]
    assert asked[0] == {"role": "system", "content": INSTRUCTION}
    assert "What is the capital of France, and why?" in asked[1]["content"]
    assert "Paris, since the Middle Ages." in asked[1]["content"]


async def test_the_title_model_setting_picks_the_model(alice, builtin_roles, titles_on, settings):
    settings.CHAT_TITLE_MODEL = "small-fast-model"

    await started(alice, "Hello", answer="Hi!", title="Greetings", fake=titles_on)

    assert [r.body["model"] for r in titles_on.requests] == ["fake-model", "small-fast-model"]


async def test_a_title_the_user_gave_meanwhile_is_kept(alice, builtin_roles, titles_on):
    titles_on.queue_reply(Reply(tokens=["Paris."], hang_after_tokens=1))
    titles_on.queue_reply(Reply(tokens=["Capital of France"]))
    exchange = await conversation_start(owner=alice, role_slug="teacher", content="Capital of France?")
    await database_sync_to_async(conversation_rename)(
        owner=alice, conversation_id=exchange.conversation.pk, title="My geography"
    )
    # The model holds the reply once it has the request: a release before that is missed.
    await asyncio.to_thread(titles_on.wait_for_request, 1, 10)
    titles_on.release()
    await wait_for_reply(exchange.reply.pk)
    await titles_written()

    assert len(titles_on.requests) == 2  # the model was asked, and its title not kept
    conversation = await Conversation.objects.aget(pk=exchange.conversation.pk)
    assert conversation.title == "My geography"


async def test_a_conversation_started_with_a_title_is_not_renamed(alice, builtin_roles, titles_on):
    conversation = await database_sync_to_async(conversation_create)(
        owner=alice, role_slug="teacher", title="Named by the API"
    )
    titles_on.queue_reply(Reply(tokens=["Hi"]))

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Hello")
    await wait_for_reply(exchange.reply.pk)
    await titles_written()

    assert len(titles_on.requests) == 1  # the reply only: no title asked for
    await conversation.arefresh_from_db()
    assert conversation.title == "Named by the API"


async def test_only_the_first_reply_asks_for_a_title(alice, builtin_roles, titles_on):
    conversation = await started(alice, "First", answer="One", title="First things", fake=titles_on)
    titles_on.queue_reply(Reply(tokens=["Two"]))

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Second")
    await wait_for_reply(exchange.reply.pk)
    await titles_written()

    assert len(titles_on.requests) == 3
    await conversation.arefresh_from_db()
    assert conversation.title == "First things"


async def test_an_empty_reply_keeps_the_first_words(alice, builtin_roles, titles_on):
    conversation = await started(alice, "Tell me about whales", answer="", title=None, fake=titles_on)

    assert conversation.title == "Tell me about whales"
    assert len(titles_on.requests) == 1  # nothing to name it by: no title asked for


async def test_a_failed_reply_asks_for_no_title(alice, builtin_roles, titles_on, settings):
    settings.OPENAI_MAX_RETRIES = 0
    titles_on.queue_reply(Reply(tokens=[], status=500))
    titles_on.queue_reply(Reply(tokens=["Never asked for"]))
    exchange = await conversation_start(owner=alice, role_slug="teacher", content="Tell me about whales")
    reply = await wait_for_reply(exchange.reply.pk)
    await titles_written()

    assert reply.status == "error"
    assert len(titles_on.requests) == 1
    conversation = await Conversation.objects.aget(pk=exchange.conversation.pk)
    assert conversation.title == "Tell me about whales"


async def test_a_stopped_reply_asks_for_no_title(alice, builtin_roles, titles_on):
    titles_on.queue_reply(Reply(tokens=["Whales", " are", " mammals."], hang_after_tokens=1))
    titles_on.queue_reply(Reply(tokens=["Never asked for"]))
    exchange = await conversation_start(owner=alice, role_slug="teacher", content="Tell me about whales")
    await asyncio.to_thread(titles_on.wait_for_request)
    await reply_stop(owner=alice, conversation_id=exchange.conversation.pk)
    reply = await wait_for_reply(exchange.reply.pk)
    await titles_written()

    assert reply.status == "stopped"
    assert len(titles_on.requests) == 1


async def test_a_provider_error_for_the_title_keeps_the_first_words(
    alice, builtin_roles, titles_on, settings
):
    settings.OPENAI_MAX_RETRIES = 0
    titles_on.queue_reply(Reply(tokens=["Whales are mammals."]))
    titles_on.queue_reply(Reply(tokens=[], status=500))
    exchange = await conversation_start(owner=alice, role_slug="teacher", content="Tell me about whales")
    await wait_for_reply(exchange.reply.pk)
    await titles_written()

    assert len(titles_on.requests) == 2
    conversation = await Conversation.objects.aget(pk=exchange.conversation.pk)
    assert conversation.title == "Tell me about whales"
    assert conversation.title_auto


async def test_the_title_keeps_the_conversations_place_in_time(alice, builtin_roles, titles_on):
    titles_on.queue_reply(Reply(tokens=["Hi"]))
    titles_on.queue_reply(Reply(tokens=["Greetings"], hang_after_tokens=0))
    exchange = await conversation_start(owner=alice, role_slug="teacher", content="Hello")
    await wait_for_reply(exchange.reply.pk)
    await asyncio.to_thread(titles_on.wait_for_request, 2)  # the title's, held back
    before = (await Conversation.objects.aget(pk=exchange.conversation.pk)).updated_at

    titles_on.release()
    await titles_written()

    conversation = await Conversation.objects.aget(pk=exchange.conversation.pk)
    assert conversation.title == "Greetings"
    assert conversation.updated_at == before


async def test_every_open_tab_of_the_user_hears_the_new_title(alice, bob, builtin_roles, titles_on):
    other_tab, _, _ = await connect(alice, "/ws/chat/")
    bobs_tab, _, _ = await connect(bob, "/ws/chat/")

    conversation = await started(
        alice, "Hello there", answer="Hi!", title="A friendly greeting", fake=titles_on
    )

    frame = (await frames_until(other_tab, "A friendly greeting"))[-1]
    assert (
        f'<span id="conv-title-{conversation.pk}" class="conv-title" hx-swap-oob="outerHTML"'
        ' data-frame="titled">A friendly greeting</span>'
    ) in frame
    assert "chat-header" not in frame  # this tab shows another conversation
    assert await bobs_tab.receive_nothing(timeout=0.5)
    await other_tab.disconnect()
    await bobs_tab.disconnect()


async def test_the_tab_showing_the_conversation_gets_its_heading_too(alice, builtin_roles, titles_on):
    titles_on.queue_reply(Reply(tokens=["Hi", "!"], hang_after_tokens=1))
    titles_on.queue_reply(Reply(tokens=["A friendly greeting"]))
    exchange = await conversation_start(owner=alice, role_slug="teacher", content="Hello there")
    tab, connected, _ = await connect(alice, f"/ws/chat/{exchange.conversation.pk}/")
    assert connected

    await asyncio.to_thread(titles_on.wait_for_request, 1, 10)  # held: a release before is missed
    titles_on.release()
    await wait_for_reply(exchange.reply.pk)
    await titles_written()

    titled = (await frames_until(tab, "A friendly greeting"))[-1]
    assert (
        f'<span id="conv-title-{exchange.conversation.pk}" class="conv-title" hx-swap-oob="outerHTML"'
        in titled
    )
    assert '<div id="chat-header" class="chat-header" hx-swap-oob="outerHTML"' in titled
    assert '<h1 class="chat-title">A friendly greeting</h1>' in titled
    await tab.disconnect()
