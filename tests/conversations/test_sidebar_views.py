import html
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from conversations.folders import folder_create
from conversations.models import Conversation
from conversations.sending import message_send, reply_regenerate
from conversations.services import conversation_archive, conversation_create, conversation_pin
from conversations.sidebar import PAGE_SIZE
from tests.conftest import wait_for_reply
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def alice_client(client, alice, builtin_roles):
    client.force_login(alice)
    return client


def headings(html: str) -> list[str]:
    return re.findall(r'<h2 class="conv-group-title">([^<]*)</h2>', html)


def item_ids(html: str) -> list[str]:
    return re.findall(r'<li id="conv-([0-9a-f-]+)"', html)


def aged(conversation: Conversation, days: float) -> Conversation:
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(days=days))
    return conversation


def test_the_page_lists_conversations_under_their_dates(alice_client, alice):
    aged(conversation_create(owner=alice, title="Old one"), 3)
    conversation_create(owner=alice, title="New one")

    page = alice_client.get("/").content.decode()

    assert headings(page) == ["Today", "Previous 7 days"]
    assert page.index("New one") < page.index("Previous 7 days") < page.index("Old one")


def test_pinning_answers_with_the_list_with_it_on_top(alice_client, alice):
    first = conversation_create(owner=alice, title="First")
    conversation_create(owner=alice, title="Second")

    response = alice_client.post(f"/c/{first.pk}/pin/", {"pinned": "1"}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="sidebar-lists">')
    assert headings(html) == ["Pinned", "Today"]
    assert item_ids(html)[0] == str(first.pk)
    assert "Unpin" in html


def test_unpinning_takes_it_out_of_the_pinned_group(alice_client, alice):
    conversation = conversation_create(owner=alice, title="First")
    conversation_pin(owner=alice, conversation_id=conversation.pk, pinned=True)

    html = alice_client.post(f"/c/{conversation.pk}/pin/", {"pinned": "0"}, **HTMX).content.decode()

    assert headings(html) == ["Today"]
    conversation.refresh_from_db()
    assert conversation.pinned_at is None


def test_without_htmx_a_pin_goes_back_to_the_conversation(alice_client, alice):
    conversation = conversation_create(owner=alice, title="First")

    response = alice_client.post(f"/c/{conversation.pk}/pin/", {"pinned": "1"})

    assert response.status_code == 302
    assert response["Location"] == f"/c/{conversation.pk}/"


def test_archiving_takes_it_out_of_the_list_and_offers_the_archived_list(alice_client, alice):
    conversation = conversation_create(owner=alice, title="Gone for now")

    html = alice_client.post(f"/c/{conversation.pk}/archive/", {"archived": "1"}, **HTMX).content.decode()

    assert str(conversation.pk) not in item_ids(html)
    assert 'hx-get="/conversations/archived/"' in html
    assert "Gone for now" not in alice_client.get("/").content.decode().split('class="archived"')[0]


def test_the_archived_list_holds_the_archived_conversations_only(alice_client, alice, bob):
    archived = conversation_create(owner=alice, title="Archived")
    conversation_create(owner=alice, title="Listed")
    bobs = conversation_create(owner=bob, title="Bob's archived")
    conversation_archive(owner=alice, conversation_id=archived.pk, archived=True)
    conversation_archive(owner=bob, conversation_id=bobs.pk, archived=True)

    html = alice_client.get("/conversations/archived/", **HTMX).content.decode()

    assert item_ids(html) == [str(archived.pk)]
    assert "Restore" in html and "Pin" not in html


def test_restoring_from_the_archived_list_keeps_that_list_open(alice_client, alice):
    first = conversation_create(owner=alice, title="First")
    second = conversation_create(owner=alice, title="Second")
    for conversation in (first, second):
        conversation_archive(owner=alice, conversation_id=conversation.pk, archived=True)

    html = alice_client.post(f"/c/{first.pk}/archive/", {"archived": "0"}, **HTMX).content.decode()

    listed, archived = html.split('<details class="archived" open>')
    assert item_ids(listed) == [str(first.pk)]
    assert item_ids(archived) == [str(second.pk)]


def test_an_archived_conversation_opens_with_its_badge(alice_client, alice):
    conversation = conversation_create(owner=alice, title="Archived")
    conversation_archive(owner=alice, conversation_id=conversation.pk, archived=True)

    page = alice_client.get(f"/c/{conversation.pk}/").content.decode()

    assert '<span class="archived-badge"' in page


def test_archiving_the_open_conversation_updates_its_heading(alice_client, alice):
    conversation = conversation_create(owner=alice, title="Open")

    html = alice_client.post(
        f"/c/{conversation.pk}/archive/", {"archived": "1"}, HTTP_X_CHAT_CURRENT=str(conversation.pk), **HTMX
    ).content.decode()

    assert '<div id="chat-header" class="chat-header" hx-swap-oob="outerHTML"' in html
    assert '<span class="archived-badge"' in html


def test_the_list_loads_its_next_page_when_it_scrolls_to_the_end(alice_client, alice):
    # A tenth of a second apart, from one moment: all of them today, unless the test runs
    # in the first seconds after midnight (86 s apart, it failed in the first 76 minutes),
    # and in order however long each takes to make (from each one's own moment, a busy
    # CI machine on PostgreSQL took over 0.1 s for one and put two in the wrong order).
    now = timezone.now()
    made = [conversation_create(owner=alice, title=f"c{n}") for n in range(PAGE_SIZE + 3)]
    for n, conversation in enumerate(made):
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now - timedelta(seconds=n / 10))

    page = alice_client.get("/").content.decode()
    more = re.search(r'hx-get="(/conversations/\?before_at=[^"]+)" hx-trigger="intersect once"', page)
    assert more is not None
    rest = alice_client.get(html.unescape(more.group(1)), **HTMX).content.decode()

    assert item_ids(page) == [str(c.pk) for c in made[:PAGE_SIZE]]
    assert item_ids(rest) == [str(c.pk) for c in made[PAGE_SIZE:]]
    assert headings(rest) == []  # still today's group
    assert "intersect once" not in rest


@pytest.mark.parametrize(
    "query", ["", "?before_at=now&before_id=x", "?before_at=2026-12-03T12:00:00%2B00:00&before_id=x"]
)
def test_a_next_page_that_does_not_say_where_the_last_ended_is_a_bad_request(alice_client, query):
    assert alice_client.get(f"/conversations/{query}", **HTMX).status_code == 400


@pytest.mark.parametrize("route", ["pin", "archive"])
def test_someone_elses_conversation_is_not_found(alice_client, bob, route):
    bobs = conversation_create(owner=bob, title="Bob's")

    assert alice_client.post(f"/c/{bobs.pk}/{route}/", **HTMX).status_code == 404
    bobs.refresh_from_db()
    assert bobs.pinned_at is None and bobs.archived_at is None


def test_the_time_zone_cookie_sets_which_day_is_today(alice_client, alice):
    now = timezone.now()
    zones = ("Pacific/Kiritimati", "Pacific/Pago_Pago")  # UTC+14 and UTC-11
    into_day = {}
    for zone in zones:
        local = now.astimezone(ZoneInfo(zone))
        into_day[zone] = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
    earlier, later = sorted(zones, key=into_day.__getitem__)  # the zone earlier in its day
    # Written after midnight in the zone later in its day, before it in the other (an hour
    # apart at least: their days start 1 or 23 hours apart).
    moment = now - (into_day[earlier] + into_day[later]) / 2
    conversation = conversation_create(owner=alice, title="Late")
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=moment)
    seen = {}
    for zone in zones:
        alice_client.cookies["tz"] = zone
        seen[zone] = headings(alice_client.get("/").content.decode())

    # (Today's heading is always there: hidden while empty.)
    assert seen == {later: ["Today"], earlier: ["Today", "Yesterday"]}


def test_an_unknown_time_zone_cookie_is_ignored(alice_client, alice):
    conversation_create(owner=alice, title="Now")
    alice_client.cookies["tz"] = "../../etc/passwd"

    response = alice_client.get("/")

    assert response.status_code == 200
    assert headings(response.content.decode()) == ["Today"]


@pytest.mark.django_db(transaction=True)
async def test_writing_in_an_archived_conversation_brings_it_back(alice, builtin_roles, fake_openai):
    conversation = await Conversation.objects.acreate(owner=alice, role_id=(await _teacher()), title="t")
    await Conversation.objects.filter(pk=conversation.pk).aupdate(archived_at=timezone.now())
    fake_openai.queue_reply(Reply(tokens=["Back"]))

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Hello again")
    await wait_for_reply(exchange.reply.pk)

    assert exchange.restored
    await conversation.arefresh_from_db()
    assert conversation.archived_at is None


@pytest.mark.django_db(transaction=True)
async def test_regenerating_in_an_archived_conversation_leaves_it_archived(alice, builtin_roles, fake_openai):
    conversation = await Conversation.objects.acreate(owner=alice, role_id=(await _teacher()), title="t")
    first = await message_send(owner=alice, conversation_id=conversation.pk, content="Hello")
    await wait_for_reply(first.reply.pk)
    archived_at = timezone.now()
    await Conversation.objects.filter(pk=conversation.pk).aupdate(archived_at=archived_at)

    exchange = await reply_regenerate(owner=alice, conversation_id=conversation.pk)
    await wait_for_reply(exchange.reply.pk)

    assert not exchange.restored
    await conversation.arefresh_from_db()
    assert conversation.archived_at == archived_at


async def _teacher() -> int:
    from roles.models import Role

    return (await Role.objects.aget(slug="teacher")).pk


@pytest.mark.parametrize("sent", [{}, {"pinned": "yes"}, {"pinned": ""}])
def test_a_pin_that_does_not_say_1_or_0_changes_nothing(alice_client, alice, sent):
    conversation = conversation_create(owner=alice, title="Mine")

    response = alice_client.post(f"/c/{conversation.pk}/pin/", sent, **HTMX)

    assert response.status_code == 400
    conversation.refresh_from_db()
    assert conversation.pinned_at is None


def test_the_selected_conversations_are_archived_and_the_list_comes_back_without_them(alice_client, alice):
    put_away = conversation_create(owner=alice, title="Put away")
    also = conversation_create(owner=alice, title="Also")
    kept = conversation_create(owner=alice, title="Kept")

    response = alice_client.post(
        "/conversations/bulk/", {"ids": [str(put_away.pk), str(also.pk)], "action": "archive"}, **HTMX
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="sidebar-lists">')
    assert re.findall(r'<li id="conv-([0-9a-f-]+)"', html) == [str(kept.pk)]
    assert Conversation.objects.filter(archived_at__isnull=False).count() == 2


def test_deleting_the_selection_with_the_open_conversation_in_it_sends_the_page_home(alice_client, alice):
    open_one = conversation_create(owner=alice, title="Open")

    response = alice_client.post(
        "/conversations/bulk/",
        {"ids": str(open_one.pk), "action": "delete"},
        **HTMX,
        HTTP_X_CHAT_CURRENT=str(open_one.pk),
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/"
    assert not Conversation.objects.exists()


def test_a_selection_read_from_a_json_body_is_moved(alice_client, alice):
    folder = folder_create(owner=alice, name="Work")
    one = conversation_create(owner=alice, title="One")

    response = alice_client.post(
        "/conversations/bulk/",
        {"ids": [str(one.pk)], "action": "move", "folder": str(folder.pk)},
        content_type="application/json",
        **HTMX,
    )

    assert response.status_code == 200
    assert Conversation.objects.get(pk=one.pk).folder_id == folder.pk


def test_a_selection_with_someone_elses_conversation_is_not_found_and_nothing_changes(
    alice_client, alice, bob
):
    mine = conversation_create(owner=alice, title="Mine")
    theirs = conversation_create(owner=bob, title="Theirs")

    response = alice_client.post(
        "/conversations/bulk/", {"ids": [str(mine.pk), str(theirs.pk)], "action": "delete"}, **HTMX
    )

    assert response.status_code == 404
    assert Conversation.objects.count() == 2


def test_a_bulk_request_without_an_action_answers_the_list_saying_why(alice_client, alice):
    mine = conversation_create(owner=alice, title="Mine")

    response = alice_client.post("/conversations/bulk/", {"ids": [str(mine.pk)]}, **HTMX)

    assert response.status_code == 422  # swapped in by the page (base.html's responseHandling)
    assert (
        '<p class="list-error" role="alert">Choose archive, delete or move.</p>' in response.content.decode()
    )
    assert Conversation.objects.get(pk=mine.pk).archived_at is None


def test_archiving_the_open_conversation_among_others_updates_its_heading(alice_client, alice):
    open_one = conversation_create(owner=alice, title="Open")
    other = conversation_create(owner=alice, title="Other")

    response = alice_client.post(
        "/conversations/bulk/",
        {"ids": [str(other.pk), str(open_one.pk)], "action": "archive"},
        **HTMX,
        HTTP_X_CHAT_CURRENT=str(open_one.pk),
    )

    html = response.content.decode()
    assert response.status_code == 200
    header = re.search(
        r'<div id="chat-header" class="chat-header" hx-swap-oob="outerHTML".*?</div>', html, re.S
    )
    assert header is not None
    assert 'class="archived-badge"' in header.group()
