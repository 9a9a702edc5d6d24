"""Searching one's conversations from the sidebar: Ctrl+K, the results, opening one at its message."""

import re

import pytest
from playwright.sync_api import Page, expect

from conversations.models import Conversation, Message
from conversations.services import conversation_create
from tests.browser.conftest import open_page, screenshot, sign_in
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def long_conversation(
    owner, title: str, found_at: int, found_text: str, turns: int = 30
) -> tuple[Conversation, Message]:
    """A conversation of `turns` questions and answers, `found_text` in question `found_at`."""
    conversation = conversation_create(owner=owner, role_slug="teacher", title=title)
    found = None
    for turn in range(1, turns + 1):
        text = found_text if turn == found_at else f"Question number {turn} about ordinary things"
        question = Message.objects.create(conversation=conversation, author="user", content=text, turn=turn)
        Message.objects.create(
            conversation=conversation,
            author="assistant",
            content=f"A long enough answer to question {turn}.\n\n" + "Some more words. " * 20,
            turn=turn,
            reply_to=question,
        )
        if turn == found_at:
            found = question
    assert found is not None
    return conversation, found


def in_view(page: Page, selector: str) -> bool:
    return page.evaluate(
        """(selector) => {
            const box = document.querySelector("#messages").getBoundingClientRect();
            const el = document.querySelector(selector).getBoundingClientRect();
            return el.top >= box.top - 1 && el.bottom <= box.bottom + 1;  // give or take a subpixel
        }""",
        selector,
    )


def test_ctrl_k_finds_a_message_and_opens_its_conversation_at_it(live_app, browser, csp_violations):
    alice = make_user("alice")
    conversation, message = long_conversation(alice, "Animals", 3, "Where does the walrus sleep at night?")
    conversation_create(owner=alice, role_slug="teacher", title="Cooking")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    page.keyboard.press("Control+k")
    expect(page.locator("#search-input")).to_be_focused()
    page.keyboard.type("WALRUS sleep")

    hit = page.locator("#search-results .hit")
    expect(hit).to_have_count(1)
    expect(hit.locator(".hit-title")).to_have_text("Animals")
    expect(hit.locator("mark")).to_have_text(["walrus", "sleep"])
    expect(page.locator("#conversation-list")).to_be_hidden()  # the results take the list's place
    screenshot(page, "desktop-search")

    page.keyboard.press("ArrowDown")
    expect(hit.locator("a")).to_be_focused()
    page.keyboard.press("Enter")

    # Earlier than the latest messages the page opens with: they load until it is there.
    page.wait_for_url(re.compile(rf"/c/{conversation.pk}/#msg-{message.pk}$"))
    found = page.locator(f"#msg-{message.pk}")
    expect(found).to_have_class(re.compile(r"\bfound\b"))
    # Opened at the message, not at the conversation's end (29 turns further down).
    assert in_view(page, f"#msg-{message.pk}")
    assert not in_view(page, "#messages .msg:last-child")
    screenshot(page, "desktop-search-opened")

    # A result in the conversation already open: shown where it is, without a page load.
    page.evaluate("window.notReloaded = true")
    page.keyboard.press("Control+k")
    page.keyboard.type("number 20 ordinary")
    expect(hit).to_have_count(1)
    hit.locator("a").click()
    twentieth = Message.objects.get(conversation=conversation, content__startswith="Question number 20 ")
    expect(page.locator(f"#msg-{twentieth.pk}")).to_have_class(re.compile(r"\bfound\b"))
    expect(found).not_to_have_class(re.compile(r"\bfound\b"))
    assert page.evaluate("window.notReloaded") is True
    assert page.url.endswith(f"#msg-{twentieth.pk}")
    assert in_view(page, f"#msg-{twentieth.pk}")
    assert csp_violations == []


def test_escape_clears_the_search_and_the_list_returns(live_app, browser, csp_violations):
    alice = make_user("alice")
    conversation_create(owner=alice, role_slug="teacher", title="Walrus facts")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    page.fill("#search-input", "nothing like this")
    empty = page.locator("#search-results .search-empty")
    expect(empty).to_have_text("Nothing found for “nothing like this”.")
    page.keyboard.press("Escape")

    expect(page.locator("#search-input")).to_have_value("")
    expect(page.locator("#search-results")).to_be_hidden()
    expect(page.locator("#conversation-list .conv")).to_have_count(1)
    # The same words again search again (htmx was told the box was emptied).
    page.fill("#search-input", "nothing like this")
    expect(empty).to_be_visible()
    assert csp_violations == []


@pytest.mark.parametrize("dark", [False, True])
def test_on_a_phone_ctrl_k_opens_the_drawer_and_finds_chinese(live_app, browser, csp_violations, dark):
    alice = make_user("alice")
    _conversation, message = long_conversation(alice, "旅行计划", 2, "我们下个月去北京看长城")
    page = open_page(browser, csp_violations, width=390, height=844, dark=dark, locale="zh-CN")
    sign_in(page, live_app, "alice")

    page.keyboard.press("Control+k")
    expect(page.locator("#sidebar")).to_be_in_viewport()
    expect(page.locator("#search-input")).to_be_focused()
    expect(page.locator("#search-input")).to_have_attribute("placeholder", "搜索")
    page.keyboard.type("北京")  # two characters: shorter than the index's trigrams

    hit = page.locator("#search-results .hit")
    expect(hit).to_have_count(1)
    expect(hit.locator("mark")).to_have_text("北京")
    screenshot(page, f"phone-search-zh-{'dark' if dark else 'light'}")

    hit.locator("a").click()
    page.wait_for_url(re.compile(rf"#msg-{message.pk}$"))
    expect(page.locator(f"#msg-{message.pk}")).to_have_class(re.compile(r"\bfound\b"))
    assert in_view(page, f"#msg-{message.pk}")
    assert csp_violations == []


def test_a_search_url_opened_as_a_page_shows_the_results_in_its_sidebar(live_app, browser, csp_violations):
    alice = make_user("alice")
    conversation_create(owner=alice, role_slug="teacher", title="Walrus facts")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    page.goto(live_app.url + "search/?q=walrus")

    expect(page.locator("#search-input")).to_have_value("walrus")
    expect(page.locator("#search-results .hit-title mark")).to_have_text("Walrus")
