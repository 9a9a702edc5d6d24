"""The prompt library in Chromium: saved in Settings, then / in the message box inserts one."""

import pytest
from playwright.sync_api import expect

from conversations.prompts import prompt_create
from tests.browser.conftest import open_page, screenshot, sign_in
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_slash_lists_the_saved_prompts_and_enter_inserts_one(live_app, fake_openai, browser, csp_violations):
    alice = make_user("alice")
    prompt_create(owner=alice, title="Translate to French", text="Translate into French:")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    page.goto(live_app.url + "accounts/settings/")
    added = page.locator('form[action$="/settings/prompts/"]')
    added.locator("input[name=title]").fill("Summarise")
    added.locator("textarea[name=text]").fill("Summarise in three bullet points:")
    page.click("text=Add the prompt")
    expect(page.locator(".prompt-title")).to_have_count(2)
    page.goto(live_app.url)
    page.wait_for_selector("#connection-state[data-state=open]")

    page.focus("#message-input")
    page.keyboard.type("/")
    options = page.locator("#prompt-menu [role=option]")
    expect(options).to_have_count(2)
    page.keyboard.type("sum")
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("Summarise")
    expect(options.first).to_have_attribute("aria-selected", "true")
    screenshot(page, "desktop-prompt-library")
    page.keyboard.press("Enter")  # inserts, does not send

    expect(page.locator("#prompt-menu")).to_have_count(0)
    expect(page.locator("#message-input")).to_have_value("Summarise in three bullet points:")
    assert fake_openai.requests == []
    page.keyboard.type(" the water cycle")
    page.keyboard.press("Enter")  # now it sends
    expect(page.locator(".msg-assistant.status-complete")).to_have_count(1)
    assert fake_openai.last_messages()[-1]["content"] == "Summarise in three bullet points: the water cycle"
    assert csp_violations == []


def test_esc_closes_the_list_and_a_slash_with_no_match_says_so(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = open_page(browser, csp_violations, width=390, height=844, dark=True)
    sign_in(page, live_app, "alice")

    page.focus("#message-input")
    page.keyboard.type("/xyz")
    expect(page.locator("#prompt-menu .prompt-empty")).to_contain_text("No saved prompt matches")
    screenshot(page, "phone-dark-prompt-library-empty")
    page.keyboard.press("Escape")

    expect(page.locator("#prompt-menu")).to_have_count(0)
    expect(page.locator("#message-input")).to_have_value("/xyz")
    assert csp_violations == []
