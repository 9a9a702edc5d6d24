"""Sharing in Chromium: the owner shares from the conversation's menu and copies the link;
someone signed out reads it; someone signed in continues it as their own."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_page, screenshot, sign_in
from tests.browser.test_chat_ui import PHONE, conversation_page, grant_clipboard, send
from tests.conftest import PASSWORD, make_user
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = "The **Moon** pulls the sea:\n\n```python\nprint('tide')\n```"


def share_from_menu(page, live_app) -> str:
    """Share the open conversation from its ⋯ menu; the link's URL."""
    page.click("#conversation-list .conv.active .conv-menu-button")
    page.click("#conversation-list .conv.active >> text=Share…")
    page.click("text=Create a link")
    expect(page.locator("#share-url")).to_contain_text(live_app.url + "s/")
    return page.locator("#share-url").inner_text()


def test_a_shared_link_is_copied_read_signed_out_and_continued(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    make_user("bob")
    fake_openai.queue_reply(Reply(tokens=[ANSWER]))
    page = conversation_page(live_app, browser, csp_violations)
    grant_clipboard(page, live_app)
    send(page, "Why are there tides?", count=1)

    url = share_from_menu(page, live_app)
    page.click("button.copy")
    expect(page.locator("button.copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == url
    screenshot(page, "desktop-share-manage")

    for name, size in {"desktop": (1280, 800), "phone": (PHONE["width"], PHONE["height"])}.items():
        for dark in (False, True):
            reader = open_page(browser, csp_violations, width=size[0], height=size[1], dark=dark)
            reader.goto(url)
            expect(reader.locator(".msg-user")).to_have_text("Why are there tides?")
            expect(reader.locator(".msg-assistant strong")).to_have_text("Moon")
            expect(reader.locator(".msg-assistant pre")).to_contain_text("print('tide')")
            screenshot(reader, f"{name}-{'dark' if dark else 'light'}-shared-conversation")
            reader.close()

    viewer = open_page(browser, csp_violations)
    viewer.goto(url)
    viewer.click("text=Sign in to continue this conversation")
    viewer.fill("input[name=username]", "bob")
    viewer.fill("input[name=password]", PASSWORD)
    viewer.click("button[type=submit]")
    viewer.wait_for_url(url)
    viewer.click("text=Continue this conversation")
    expect(viewer.locator(".msg-assistant.status-complete strong")).to_have_text("Moon")
    expect(viewer.locator("#conversation-list .conv.active")).to_contain_text("Why are there tides?")
    assert csp_violations == []


def test_a_deleted_link_no_longer_opens(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    fake_openai.queue_reply(Reply(tokens=["Because of the Moon."]))
    page = conversation_page(live_app, browser, csp_violations)
    send(page, "Why are there tides?", count=1)
    url = share_from_menu(page, live_app)

    page.click("text=Delete the link")

    expect(page.locator(".notice")).to_contain_text("no longer opens")
    expect(page.locator("#share-url")).to_have_count(0)
    reader = open_page(browser, csp_violations)
    response = reader.goto(url)
    assert response is not None and response.status == 404


def test_continuing_past_the_hours_limit_says_when_to_try_again_on_the_shared_page(
    app_servers, fake_openai, browser, csp_violations
):
    live_app = app_servers(SHARE_CONTINUE_PER_HOUR="1")
    make_user("alice")
    make_user("bob")
    fake_openai.queue_reply(Reply(tokens=["Because of the Moon."]))
    page = conversation_page(live_app, browser, csp_violations)
    send(page, "Why are there tides?", count=1)
    url = share_from_menu(page, live_app)
    viewer = open_page(browser, csp_violations, width=PHONE["width"], height=PHONE["height"], locale="zh-CN")
    sign_in(viewer, live_app, "bob")
    viewer.goto(url)
    viewer.click("footer.shared-footer button[type=submit]")
    viewer.wait_for_url(f"{live_app.url}c/*/")

    viewer.goto(url)
    with viewer.expect_response(lambda response: response.request.method == "POST") as posted:
        viewer.click("footer.shared-footer button[type=submit]")

    assert posted.value.status == 429 and int(posted.value.headers["retry-after"]) > 3000
    expect(viewer.locator(".shared-footer [role=alert]")).to_have_text(
        "本小时内继续的对话过多，请在 60 分钟后重试。"
    )
    screenshot(viewer, "phone-zh-shared-continue-limit")
    assert csp_violations == []
