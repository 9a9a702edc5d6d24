"""A long conversation as its reader meets it: it opens at its latest messages, the
earlier ones load as the reader scrolls up without moving what is being read, and
writing in it streams as in any other."""

import pytest
from playwright.sync_api import Page, Route, expect

from conversations.models import Conversation, Message
from conversations.selectors import MESSAGES_PAGE
from conversations.services import conversation_create
from tests.browser.conftest import load_earlier_messages, open_conversation, screenshot
from tests.browser.test_chat_ui import PHONE, conversation_page, send
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)

TURNS = 75  # 150 messages: the page, and three loads before it


def long_conversation(turns: int = TURNS) -> Conversation:
    alice = make_user("alice")
    conversation = conversation_create(owner=alice, title="A long talk")
    for n in range(turns):
        Message.objects.create(conversation=conversation, author="user", content=f"Question {n}")
        Message.objects.create(conversation=conversation, author="assistant", content=f"Answer {n}")
    return conversation


def top_of(page: Page, selector: str) -> float:
    return page.evaluate("(s) => document.querySelector(s).getBoundingClientRect().top", selector)


def test_a_long_conversation_opens_at_its_end_with_only_its_latest_messages(
    live_app, fake_openai, browser, csp_violations
):
    conversation = long_conversation()
    page = conversation_page(live_app, browser, csp_violations)

    open_conversation(page, live_app, conversation.pk)

    expect(page.locator("#messages .msg")).to_have_count(MESSAGES_PAGE)
    expect(page.locator("#messages .msg").last).to_contain_text(f"Answer {TURNS - 1}")
    expect(page.locator("#messages .msg").last).to_be_in_viewport()
    expect(page.locator(".older-messages")).not_to_be_in_viewport()
    assert csp_violations == []


def test_scrolling_up_loads_earlier_messages_and_keeps_the_one_being_read_in_place(
    live_app, fake_openai, browser, csp_violations
):
    conversation = long_conversation()
    page = conversation_page(live_app, browser, csp_violations, **PHONE, dark=True, locale="zh-CN")
    open_conversation(page, live_app, conversation.pk)
    reading = f"#{page.locator('#messages .msg').first.get_attribute('id')}"
    held: list[Route] = []  # the earlier messages' answer, held until its position is read
    page.route("**/messages/?before=*", lambda route: held.append(route))

    page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")  # up to the top
    for _ in range(50):  # the request goes out as the strip at the top comes into view
        if held:
            break
        page.wait_for_timeout(100)
    before = top_of(page, reading)
    held[0].continue_()
    page.unroute("**/messages/?before=*")

    expect(page.locator("#messages .msg")).to_have_count(2 * MESSAGES_PAGE)
    page.wait_for_timeout(200)  # settled: code buttons, the observer's scroll
    assert abs(top_of(page, reading) - before) < 2
    screenshot(page, "phone-dark-zh-long-conversation-earlier")

    loads = load_earlier_messages(page)

    assert loads == 2  # 150 messages: 40 with the page, then 40, 40 and 30
    expect(page.locator("#messages .msg")).to_have_count(2 * TURNS)
    texts = page.locator("#messages .msg .msg-body").all_inner_texts()
    assert [t.strip() for t in texts[:4]] == ["Question 0", "Answer 0", "Question 1", "Answer 1"]
    assert csp_violations == []


def test_writing_in_a_long_conversation_streams_the_reply_and_a_reload_keeps_it(
    live_app, fake_openai, browser, csp_violations
):
    conversation = long_conversation()
    page = conversation_page(live_app, browser, csp_violations)
    open_conversation(page, live_app, conversation.pk)
    shown = page.locator(".msg-assistant.status-complete").count()

    send(page, "One more question", count=shown + 1)

    expect(page.locator("#messages .msg").last).to_be_in_viewport()
    page.reload()
    page.wait_for_selector("#connection-state[data-state=open]")
    expect(page.locator("#messages .msg-user").last).to_contain_text("One more question")
    expect(page.locator("#messages .msg")).to_have_count(MESSAGES_PAGE)
    screenshot(page, "desktop-long-conversation")
    assert csp_violations == []
