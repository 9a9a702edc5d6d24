"""A reasoning model's thinking on the page: streamed live in its own block above the
answer, closed once the answer begins, and kept through a reload."""

import re

import pytest
from playwright.sync_api import expect

from conversations.models import Message
from tests.browser.conftest import open_page, screenshot, sign_in
from tests.conftest import make_user
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

REASONING = tuple(f"step{n} " for n in range(1, 13))


def test_the_thinking_streams_open_then_closes_when_the_answer_begins(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    fake_openai.queue_reply(Reply(reasoning=REASONING, tokens=["**Four**", "."], delay=0.15))
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    page.fill("#message-input", "What is 2+2?")
    page.keyboard.press("Enter")

    thinking = page.locator(".msg-assistant .thinking")
    expect(thinking.locator(".thinking-text")).to_contain_text("step2")
    assert thinking.get_attribute("open") is not None  # open while it thinks
    expect(thinking.locator("summary")).to_have_text("Thinking…")
    assert "step12" not in thinking.inner_text()  # live: not all at once
    screenshot(page, "desktop-thinking")

    expect(page.locator(".msg-assistant.status-complete strong")).to_have_text("Four")
    thinking = page.locator(".msg-assistant .thinking")
    expect(thinking.locator("summary")).to_have_text(re.compile(r"^Thought for [1-9]\d* s$"))
    assert thinking.get_attribute("open") is None  # closed once the answer began
    expect(page.locator(".msg-assistant .msg-body")).to_have_text("Four.")  # the answer alone
    thinking.locator("summary").click()
    expect(thinking.locator(".thinking-text")).to_have_text("".join(REASONING))
    assert csp_violations == []


def test_a_reload_mid_thinking_shows_the_thinking_so_far_and_continues(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    fake_openai.queue_reply(Reply(reasoning=REASONING, tokens=["Four."], delay=0.15))
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    page.fill("#message-input", "What is 2+2?")
    page.keyboard.press("Enter")
    expect(page.locator(".thinking-text")).to_contain_text("step3")

    page.reload()

    text = page.locator(".msg-assistant .thinking-text")
    expect(text).to_contain_text("step5")
    assert "".join(REASONING).startswith(text.inner_text())  # from the first step, nothing doubled
    expect(page.locator(".msg-assistant.status-complete .msg-body")).to_have_text("Four.")
    assert Message.objects.get(author="assistant").reasoning == "".join(REASONING)
    assert csp_violations == []
