"""The sidebar's list as a user with many conversations meets it: date groups, pin, archive
and restore from each conversation's menu, and a long list loading as it scrolls."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from conversations.models import Conversation
from conversations.services import conversation_archive, conversation_create, conversation_pin
from conversations.sidebar import PAGE_SIZE
from tests.browser.conftest import screenshot
from tests.browser.test_chat_ui import PHONE, conversation_page, send
from tests.conftest import make_user
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def aged(conversation: Conversation, days: float) -> Conversation:
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(days=days))
    return conversation


def shown_groups(page: Page) -> list[str]:
    """The visible headings of the list, in order."""
    return page.locator("#conversation-list .conv-group:visible").all_inner_texts()


def open_menu(page: Page, conversation: Conversation) -> None:
    page.click(f"#conv-{conversation.pk} .conv-menu-button")
    expect(page.locator(f"#conv-menu-{conversation.pk}")).to_be_visible()


def test_a_pin_from_the_menu_puts_the_conversation_on_top_under_pinned(
    live_app, fake_openai, browser, csp_violations
):
    alice = make_user("alice")
    old = aged(conversation_create(owner=alice, title="Tax return notes"), 45)
    aged(conversation_create(owner=alice, title="Holiday plans"), 3)
    conversation_create(owner=alice, title="Dinner ideas")
    page = conversation_page(live_app, browser, csp_violations)
    expect(page.locator("#conversation-list .conv-group:visible")).to_have_count(3)
    assert shown_groups(page)[:2] == ["Today", "Previous 7 days"]

    open_menu(page, old)
    page.locator(f"#conv-menu-{old.pk}").get_by_role("button", name="Pin", exact=True).click()

    expect(page.locator("#conversation-list .conv-group:visible").first).to_have_text("Pinned")
    expect(page.locator("#conversation-list .conv .conv-title").first).to_have_text("Tax return notes")
    assert shown_groups(page) == ["Pinned", "Today", "Previous 7 days"]
    screenshot(page, "desktop-sidebar-pinned")

    page.reload()  # kept, and the menu now offers Unpin
    open_menu(page, old)
    page.locator(f"#conv-menu-{old.pk}").get_by_role("button", name="Unpin").click()
    expect(page.locator("#conversation-list .conv-group:visible").first).to_have_text("Today")
    expect(page.locator("#conversation-list .conv .conv-title").last).to_have_text("Tax return notes")
    assert csp_violations == []


def test_archive_hides_the_open_conversation_and_restore_brings_it_back(
    live_app, fake_openai, browser, csp_violations
):
    alice = make_user("alice")
    kept = conversation_create(owner=alice, title="Kept")
    put_away = conversation_create(owner=alice, title="Put away")
    page = conversation_page(live_app, browser, csp_violations, **PHONE, dark=True, locale="zh-CN")
    page.goto(f"{live_app.url}c/{put_away.pk}/")
    page.wait_for_selector("#connection-state[data-state=open]")
    page.click(".menu-button")

    open_menu(page, put_away)
    page.locator(f"#conv-menu-{put_away.pk}").get_by_role("button", name="归档").click()

    expect(page.locator(f"#conversation-list #conv-{put_away.pk}")).to_have_count(0)
    expect(page.locator("#chat-header .archived-badge")).to_have_text("已归档")
    archived = page.locator("details.archived")
    expect(archived.locator("summary")).to_have_text("已归档")
    archived.locator("summary").click()  # loads the archived list
    expect(archived.locator(f"#conv-{put_away.pk}")).to_be_visible()
    screenshot(page, "phone-dark-zh-sidebar-archived")

    open_menu(page, put_away)
    page.locator(f"#conv-menu-{put_away.pk}").get_by_role("button", name="恢复").click()

    expect(page.locator(f"#conversation-list #conv-{put_away.pk}")).to_be_visible()
    expect(page.locator("details.archived")).to_have_count(0)  # nothing archived any more
    expect(page.locator("#chat-header .archived-badge")).to_have_count(0)
    assert page.locator("#conversation-list .conv .conv-title").all_inner_texts() == ["Put away", "Kept"]
    kept.refresh_from_db()
    assert kept.archived_at is None
    assert csp_violations == []


def test_writing_in_an_archived_conversation_puts_it_back_in_the_list(
    live_app, fake_openai, browser, csp_violations
):
    alice = make_user("alice")
    pinned = conversation_create(owner=alice, title="Pinned one")
    conversation_pin(owner=alice, conversation_id=pinned.pk, pinned=True)
    put_away = conversation_create(owner=alice, title="Put away")
    conversation_archive(owner=alice, conversation_id=put_away.pk, archived=True)
    page = conversation_page(live_app, browser, csp_violations)
    page.goto(f"{live_app.url}c/{put_away.pk}/")
    page.wait_for_selector("#connection-state[data-state=open]")
    expect(page.locator(f"#conversation-list #conv-{put_away.pk}")).to_have_count(0)

    send(page, "One more question", count=1)

    item = page.locator(f"#conv-{put_away.pk}")
    expect(item).to_have_count(1)
    # Under Today's heading, after the pinned group (its heading and item).
    expect(page.locator("#conversation-list > li").nth(3)).to_have_id(f"conv-{put_away.pk}")
    assert shown_groups(page) == ["Pinned", "Today"]
    expect(page.locator("#chat-header .archived-badge")).to_have_count(0)
    assert csp_violations == []


def test_a_new_conversation_goes_under_today_below_the_pinned_ones(
    live_app, fake_openai, browser, csp_violations
):
    alice = make_user("alice")
    pinned = conversation_create(owner=alice, title="Pinned one")
    conversation_pin(owner=alice, conversation_id=pinned.pk, pinned=True)
    aged(conversation_create(owner=alice, title="Last week"), 4)
    page = conversation_page(live_app, browser, csp_violations)
    assert shown_groups(page) == ["Pinned", "Previous 7 days"]

    send(page, "A brand new question", count=1)

    page.wait_for_url(re.compile(r"/c/[0-9a-f-]+/$"))
    titles = page.locator("#conversation-list .conv .conv-title")
    expect(titles).to_have_text(["Pinned one", "A brand new question", "Last week"])
    assert shown_groups(page) == ["Pinned", "Today", "Previous 7 days"]
    assert csp_violations == []


def test_a_long_list_loads_the_rest_as_it_scrolls(live_app, fake_openai, browser, csp_violations):
    alice = make_user("alice")
    total = PAGE_SIZE + 12
    for n in range(total):
        aged(conversation_create(owner=alice, title=f"Conversation {n}"), n * 0.9)
    page = conversation_page(live_app, browser, csp_violations)
    items = page.locator("#conversation-list .conv")
    expect(items).to_have_count(PAGE_SIZE)

    page.locator(".conv-more").scroll_into_view_if_needed()

    expect(items).to_have_count(total)
    titles = items.locator(".conv-title").all_inner_texts()
    assert titles == [f"Conversation {n}" for n in range(total)]
    # Each heading once, in order, across the two pages.
    groups = shown_groups(page)
    assert groups[:4] == ["Today", "Yesterday", "Previous 7 days", "Previous 30 days"]
    assert len(groups) == len(set(groups))
    expect(page.locator(".conv-more")).to_have_count(0)
    assert csp_violations == []


def test_the_model_names_a_new_conversation_in_every_open_tab(
    app_servers, fake_openai, browser, csp_violations
):
    live_app = app_servers(CHAT_TITLES="true")
    make_user("alice")
    fake_openai.queue_reply(Reply(tokens=["Paris", " is", " the", " capital."], hang_after_tokens=1))
    fake_openai.queue_reply(Reply(tokens=["Capital of France"]))
    page = conversation_page(live_app, browser, csp_violations)
    question = "What is the capital of France? One sentence."
    page.fill("#message-input", question)
    page.keyboard.press("Enter")
    first_words = page.locator("#conversation-list .conv .conv-title").first
    expect(first_words).to_have_text(question)  # named by its first words at once
    # Another tab, opened while the reply is being written, lists it by those words too.
    other_tab = conversation_page(live_app, browser, csp_violations)
    expect(other_tab.locator("#conversation-list .conv .conv-title").first).to_have_text(question)

    fake_openai.release()

    expect(page.locator(".msg-assistant.status-complete")).to_have_count(1)
    expect(first_words).to_have_text("Capital of France")
    expect(page.locator("#chat-header .chat-title")).to_have_text("Capital of France")
    expect(page).to_have_title("Capital of France · Chatsite")
    expect(other_tab.locator("#conversation-list .conv .conv-title").first).to_have_text("Capital of France")
    expect(other_tab.locator("#chat-header .chat-title")).to_have_text("New chat")  # it shows no conversation
    screenshot(page, "desktop-title-by-model")
    assert csp_violations == []
