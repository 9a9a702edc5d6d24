"""The chat page in headless Chromium against a real daphne process and the fake provider."""

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from conversations.models import Conversation, Message
from tests.browser.conftest import open_page, screenshot, sign_in
from tests.conftest import make_user
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

SLOW_REPLY = Reply(tokens=["**Photosynthesis**", " turns", " light", " into", " sugar."], delay=0.25)


def test_chat_with_the_teacher_streams_and_survives_a_reload(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    fake_openai.queue_reply(SLOW_REPLY)
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    page.click(".role-card[data-role=teacher]")
    page.fill("#message-input", "What is photosynthesis?")
    page.keyboard.press("Enter")

    # The user's bubble appears at once, and the reply arrives token by token.
    expect(page.locator(".msg-user .msg-body")).to_have_text("What is photosynthesis?")
    streaming = page.locator(".msg-assistant.status-streaming .stream-text")
    expect(streaming).to_contain_text("turns")
    partial = streaming.inner_text()
    assert "sugar" not in partial
    expect(page.locator("#message-input")).to_be_disabled()
    # The final rendering replaces the streamed text with sanitised Markdown.
    expect(page.locator(".msg-assistant.status-complete strong")).to_have_text("Photosynthesis")
    expect(page.locator("#message-input")).to_be_enabled()
    conversation = Conversation.objects.get()
    assert re.search(rf"/c/{conversation.pk}/$", page.url)
    assert conversation.role.slug == "teacher"
    assert fake_openai.last_messages()[0]["content"] == conversation.system_prompt
    screenshot(page, "desktop-chat")

    page.reload()

    expect(page.locator(".msg-user .msg-body")).to_have_text("What is photosynthesis?")
    expect(page.locator(".msg-assistant .markdown")).to_have_text("Photosynthesis turns light into sugar.")
    expect(page.locator(f"#conv-{conversation.pk}")).to_contain_text("What is photosynthesis?")
    assert csp_violations == []


def test_a_second_turn_remembers_the_first(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    for text in ["My name is Ada.", "What is my name?"]:
        page.fill("#message-input", text)
        page.keyboard.press("Enter")
        expect(page.locator(".msg-assistant.status-complete").last).to_contain_text(f"Echo: {text}")

    assert [m["content"] for m in fake_openai.last_messages()[1:]] == [
        "My name is Ada.",
        "Echo: My name is Ada.",
        "What is my name?",
    ]
    assert csp_violations == []


def test_shift_enter_is_a_new_line_and_ime_enter_does_not_send(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    box = page.locator("#message-input")

    box.type("line one")
    box.press("Shift+Enter")
    box.type("line two")
    box.dispatch_event("keydown", {"key": "Enter", "isComposing": True, "bubbles": True})
    assert box.input_value() == "line one\nline two"

    # A message sent now travels the same socket after any the composing Enter sent:
    # once its reply is complete, a send by that Enter would have been saved too.
    box.fill("the real message")
    box.press("Enter")

    expect(page.locator(".msg-assistant.status-complete")).to_contain_text("Echo: the real message")
    assert list(Message.objects.filter(author="user").values_list("content", flat=True)) == [
        "the real message"
    ]
    expect(page.locator(".msg-user .msg-body")).to_have_text("the real message")


def test_a_provider_error_is_shown_and_the_message_kept(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    for _ in range(2):  # the request and its one retry
        fake_openai.queue_reply(Reply(tokens=[], status=503))
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    page.fill("#message-input", "Are you there?")
    page.keyboard.press("Enter")

    expect(page.locator(".msg-assistant .msg-error")).to_contain_text("HTTP 503")
    expect(page.locator(".msg-user .msg-body")).to_have_text("Are you there?")
    assert Message.objects.get(author="assistant").status == "error"
    expect(page.locator("#message-input")).to_be_enabled()


def test_conversations_are_reopened_renamed_and_deleted_from_the_sidebar(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    for text in ["First chat", "Second chat"]:
        page.goto(live_app.url)
        page.wait_for_selector("#connection-state[data-state=open]")
        page.fill("#message-input", text)
        page.keyboard.press("Enter")
        expect(page.locator(".msg-assistant.status-complete")).to_contain_text(f"Echo: {text}")
    first, second = Conversation.objects.order_by("created_at")

    page.click(f"#conv-{first.pk} a")
    expect(page.locator(".msg-user .msg-body")).to_have_text("First chat")

    page.click(f"#conv-{first.pk} .conv-menu-button")
    page.fill(f"#conv-{first.pk} input[name=title]", "Renamed chat")
    page.click(f"#conv-{first.pk} .rename button")
    expect(page.locator(f"#conv-{first.pk} .conv-title")).to_have_text("Renamed chat")

    page.click(f"#conv-{second.pk} .conv-menu-button")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"#conv-{second.pk} .danger")
    expect(page.locator(f"#conv-{second.pk}")).to_have_count(0)
    assert list(Conversation.objects.values_list("title", flat=True)) == ["Renamed chat"]
    assert csp_violations == []


def test_on_a_phone_the_sidebar_is_a_drawer(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    page = open_page(browser, csp_violations, width=375, height=740)
    sign_in(page, live_app, "alice")
    page.fill("#message-input", "Hello from a phone")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-assistant.status-complete")).to_contain_text("Echo: Hello from a phone")
    sidebar = page.locator(".sidebar")
    expect(sidebar).to_be_hidden()  # off screen, and out of the Tab order
    screenshot(page, "phone-chat")

    page.click(".menu-button")

    expect(sidebar).to_have_css("transform", "none")  # slid fully open
    expect(page.locator(".conv.active")).to_be_in_viewport()
    screenshot(page, "phone-sidebar")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


LONG_TOKENS = [f"n{n} " for n in range(40)]
LONG_TEXT = "".join(LONG_TOKENS)


def long_reply_under_way(live_app, fake_openai, browser, csp_violations) -> Page:
    """Alice signed in, with a slow 40-word reply a few words in."""
    make_user("alice")
    fake_openai.queue_reply(Reply(tokens=LONG_TOKENS, delay=0.08))
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    page.fill("#message-input", "Count for me")
    page.keyboard.press("Enter")
    expect(page.locator(".stream-text")).to_contain_text("n5 ")
    return page


def test_a_reload_mid_reply_continues_without_gap_or_duplicate(
    live_app, fake_openai, browser, csp_violations
):
    page = long_reply_under_way(live_app, fake_openai, browser, csp_violations)

    page.reload()

    streaming = page.locator(".msg-assistant.status-streaming .stream-text")
    expect(streaming).to_contain_text("n20 ")
    assert LONG_TEXT.startswith(streaming.inner_text())  # from the first word, nothing doubled
    expect(page.locator(".msg-assistant.status-complete .markdown")).to_have_text(LONG_TEXT.strip())
    assert Message.objects.get(author="assistant").content == LONG_TEXT
    assert csp_violations == []


@pytest.mark.parametrize("how", ["button", "escape"])
def test_stop_keeps_the_text_on_screen(live_app, fake_openai, browser, csp_violations, how):
    page = long_reply_under_way(live_app, fake_openai, browser, csp_violations)

    if how == "button":
        page.click("#stop-button")
    else:
        page.keyboard.press("Escape")

    expect(page.locator(".msg-assistant.status-stopped")).to_be_visible()
    saved = Message.objects.get(author="assistant")
    assert saved.status == "stopped"
    assert LONG_TEXT.startswith(saved.content) and "n5 " in saved.content and saved.content != LONG_TEXT
    expect(page.locator(".msg-assistant .markdown")).to_have_text(saved.content.strip())
    expect(page.locator("#message-input")).to_be_enabled()


def test_regenerate_edit_and_flip_between_versions(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    fake_openai.queue_reply(Reply(tokens=["Version", " one"]))
    fake_openai.queue_reply(Reply(tokens=["Version", " two"]))
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    page.fill("#message-input", "Tell me something")
    page.keyboard.press("Enter")
    reply = page.locator(".msg-assistant.status-complete .msg-body")
    expect(reply).to_have_text("Version one")

    page.click(".msg-assistant .regenerate")

    expect(reply).to_have_text("Version two")
    expect(page.locator(".msg-assistant .branch-count")).to_have_text("2 / 2")
    page.click(".msg-assistant .branches button[aria-label='Previous version']")
    expect(reply).to_have_text("Version one")
    expect(page.locator(".msg-assistant .branch-count")).to_have_text("1 / 2")

    page.click(".msg-edit summary")
    page.fill(".msg-edit textarea", "Tell me something else")
    page.click(".msg-edit button[type=submit]")

    expect(page.locator(".msg-user .msg-body")).to_have_text("Tell me something else")
    expect(reply).to_have_text("Echo: Tell me something else")
    page.reload()
    expect(page.locator(".msg-user .msg-body")).to_have_text("Tell me something else")
    # The edit is the question's second version, with a reply of its own.
    expect(page.locator(".msg-user .branch-count")).to_have_text("2 / 2")
    expect(page.locator(".msg-assistant .branches")).to_have_count(0)
    page.click(".msg-user .branches button[aria-label='Previous version']")
    expect(page.locator(".msg-user .msg-body")).to_have_text("Tell me something")
    # That question's branch as it was left: its first reply, of two.
    expect(reply).to_have_text("Version one")
    expect(page.locator(".msg-assistant .branch-count")).to_have_text("1 / 2")
    assert csp_violations == []


# Desktop, light, English; phone, dark, Chinese.
LOOKS: dict[str, dict[str, Any]] = {
    "desktop-light-en": {},
    "phone-dark-zh": {"width": 390, "height": 844, "dark": True, "locale": "zh-CN"},
}


@pytest.mark.parametrize("look", sorted(LOOKS))
def test_an_earlier_question_is_edited_and_each_branch_kept(
    live_app, fake_openai, browser, csp_violations, look
):
    make_user("alice")
    page = open_page(browser, csp_violations, **LOOKS[look])
    sign_in(page, live_app, "alice")
    for text in ["one", "two", "three"]:
        page.fill("#message-input", text)
        page.keyboard.press("Enter")
        expect(page.locator(".msg-assistant.status-complete").last).to_contain_text(f"Echo: {text}")
    first = page.locator(".msg-user").first

    first.hover()
    first.locator(".msg-edit summary").click()
    first.locator(".msg-edit textarea").fill("one, said again")
    first.locator(".msg-edit button[type=submit]").click()

    replies = page.locator(".msg-assistant.status-complete .msg-body")
    expect(replies).to_have_text(["Echo: one, said again"])
    expect(page.locator(".msg-user .msg-body")).to_have_text(["one, said again"])
    expect(first.locator(".branch-count")).to_have_text("2 / 2")
    assert [m["content"] for m in fake_openai.last_messages()[1:]] == ["one, said again"]
    screenshot(page, f"{look}-branch-edited")

    first.locator(".branches button").first.click()

    expect(replies).to_have_text(["Echo: one", "Echo: two", "Echo: three"])
    expect(first.locator(".branch-count")).to_have_text("1 / 2")
    page.reload()
    expect(page.locator(".msg-user .msg-body")).to_have_text(["one", "two", "three"])
    page.fill("#message-input", "four")
    page.keyboard.press("Enter")
    expect(replies.last).to_have_text("Echo: four")
    assert [m["content"] for m in fake_openai.last_messages()[1:]] == [
        "one", "Echo: one", "two", "Echo: two", "three", "Echo: three", "four",
    ]  # fmt: skip
    screenshot(page, f"{look}-branch-back")
    assert csp_violations == []


def test_a_double_enter_sends_the_message_once(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    fake_openai.queue_reply(Reply(tokens=["Only", " once"], delay=0.2))
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    page.fill("#message-input", "Hello")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")

    expect(page.locator(".msg-assistant.status-complete")).to_contain_text("Only once")
    assert Message.objects.filter(author="user").count() == 1
    assert Conversation.objects.count() == 1
