"""Keyboard shortcuts, pressed in Chromium: each does what its button does, and Ctrl+/ lists them."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_page, screenshot, sign_in
from tests.browser.test_chat_ui import grant_clipboard, send
from tests.conftest import make_user
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def test_ctrl_slash_lists_the_shortcuts_and_esc_closes_the_list_not_the_reply(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    fake_openai.queue_reply(Reply(tokens=[" slow"] * 60, delay=0.15))
    page.fill("#message-input", "Take your time")
    page.keyboard.press("Enter")
    expect(page.locator("#stop-button")).to_be_visible()

    page.keyboard.press("Control+/")
    shortcuts = page.locator("#shortcuts")
    expect(shortcuts).to_be_visible()
    expect(shortcuts.locator("tr")).to_have_count(10)
    expect(shortcuts).to_contain_text("Copy the last reply")
    screenshot(page, "desktop-shortcuts")
    body = page.locator(".msg-assistant .msg-body")
    page.keyboard.press("Escape")
    written = body.text_content() or ""

    expect(shortcuts).to_be_hidden()
    # Still being written: ten more words arrive after that Esc (a stop would end it at once).
    for _ in range(100):
        if len(body.text_content() or "") >= len(written) + len(" slow") * 10:
            break
        page.wait_for_timeout(100)
    assert len(body.text_content() or "") >= len(written) + len(" slow") * 10
    expect(page.locator(".msg-assistant.status-streaming")).to_have_count(1)
    page.keyboard.press("Escape")  # and now Esc stops it, as before
    expect(page.locator(".msg-assistant.status-stopped")).to_have_count(1)
    assert csp_violations == []


def test_question_mark_outside_a_field_lists_them_and_inside_one_types_it(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = open_page(browser, csp_violations, dark=True, locale="zh-CN")
    sign_in(page, live_app, "alice")

    page.focus("#message-input")
    page.keyboard.type("why?")
    expect(page.locator("#message-input")).to_have_value("why?")
    expect(page.locator("#shortcuts")).to_be_hidden()
    page.evaluate("document.activeElement.blur()")  # out of the field
    page.keyboard.press("?")

    expect(page.locator("#shortcuts")).to_be_visible()
    screenshot(page, "desktop-dark-zh-shortcuts")
    page.click("#shortcuts button")
    expect(page.locator("#shortcuts")).to_be_hidden()
    page.click(".shortcuts-open")  # the sidebar's button
    expect(page.locator("#shortcuts")).to_be_visible()
    assert csp_violations == []


def test_new_chat_focus_and_copy_the_last_reply_from_the_keyboard(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = open_page(browser, csp_violations)
    grant_clipboard(page, live_app)
    sign_in(page, live_app, "alice")
    send(page, "First question", count=1)
    fake_openai.queue_reply(Reply(tokens=["The", " second", " answer"]))
    send(page, "Second question", count=2)
    page.evaluate("document.activeElement.blur()")

    page.keyboard.press("Control+Shift+C")
    expect(page.locator(".msg-assistant").last.locator("button.copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "The second answer"
    page.keyboard.press("Shift+Escape")
    expect(page.locator("#message-input")).to_be_focused()
    page.keyboard.press("Control+Shift+O")

    page.wait_for_url(live_app.url)
    expect(page.locator("#welcome")).to_be_visible()
    assert csp_violations == []


def test_ctrl_shift_arrows_step_through_the_last_replys_versions(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    fake_openai.queue_reply(Reply(tokens=["First", " take"]))
    send(page, "Tell me", count=1)
    fake_openai.queue_reply(Reply(tokens=["Second", " take"]))
    page.click(".msg-assistant .regenerate")
    expect(page.locator(".msg-assistant .msg-body")).to_have_text("Second take")
    page.evaluate("document.activeElement.blur()")

    page.keyboard.press("Control+Shift+ArrowLeft")
    expect(page.locator(".msg-assistant .msg-body")).to_have_text("First take")
    expect(page.locator(".branch-count")).to_have_text("1 / 2")
    page.keyboard.press("Control+Shift+ArrowRight")
    expect(page.locator(".msg-assistant .msg-body")).to_have_text("Second take")

    page.fill("#message-input", "words to select")
    page.keyboard.press("Control+Shift+ArrowLeft")  # in the box with text: the box's own (select a word)
    selected = page.evaluate(
        "(() => { const box = document.getElementById('message-input');"
        " return box.value.slice(box.selectionStart, box.selectionEnd); })()"
    )
    assert selected == "select"
    expect(page.locator(".branch-count")).to_have_text("2 / 2")
    assert csp_violations == []


def test_shift_esc_in_the_search_box_goes_to_the_message_box_and_keeps_the_search(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    page.fill("#search-input", "photosynthesis")

    page.keyboard.press("Shift+Escape")

    expect(page.locator("#message-input")).to_be_focused()
    expect(page.locator("#search-input")).to_have_value("photosynthesis")
    assert csp_violations == []
