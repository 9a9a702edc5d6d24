"""Importing in Chromium: a ChatGPT export uploaded on the settings page becomes a
conversation in the sidebar, under the month it was written, and opens."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.browser.test_chat_ui import conversation_page
from tests.conftest import make_user
from tests.conversations.imports_samples import chatgpt_file, zipped

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_chatgpt_export_uploaded_in_settings_is_listed_and_opens(
    live_app, fake_openai, browser, csp_violations, tmp_path
):
    make_user("alice")
    export = tmp_path / "chatgpt-export.zip"
    export.write_bytes(zipped("conversations.json", chatgpt_file()))
    page = conversation_page(live_app, browser, csp_violations)
    page.goto(live_app.url + "accounts/settings/")

    page.set_input_files("input[name=file]", str(export))
    page.get_by_role("button", name="Import", exact=True).click()

    expect(page.locator(".notice")).to_have_text("1 conversation was imported.")
    screenshot(page, "desktop-import-done")
    page.goto(live_app.url)
    item = page.locator("#conversation-list .conv", has_text="Tides")
    expect(item).to_have_count(1)
    expect(page.locator("#conversation-list .conv-group:visible").last).to_have_text("November 2023")
    item.locator("a").first.click()
    expect(page.locator(".msg-assistant strong")).to_have_text("Moon")
    expect(page.locator(".msg-user")).to_have_count(2)
    assert csp_violations == []
