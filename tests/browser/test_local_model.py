"""The page while ./run prepares the built-in model: it says how far it has got, refuses
a message clearly (keeping its text), and chats once the model is ready, without a reload.

The app is served as ./run serves it while the model compiles: its default provider is
the local model's address (here the fake provider), and the launcher's state file says
how far preparing it has got (here written by the test, as the launcher writes it).
"""

import pytest
from playwright.sync_api import expect

from providers.local_model_state import LocalModelState, local_model_state_write
from tests.browser.conftest import open_page, screenshot, sign_in
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_page_follows_the_local_model_being_prepared_and_chats_once_it_is_ready(
    app_servers, fake_openai, browser, csp_violations, tmp_path
):
    state_file = tmp_path / "db.sqlite3.local-model.json"
    local_model_state_write(state_file, LocalModelState("preparing", stage="building", percent=45))
    live_app = app_servers(
        CHATSITE_LOCAL_MODEL_IN_USE="true", CHATSITE_LOCAL_MODEL_STATE_FILE=str(state_file)
    )
    make_user("alice")
    page = open_page(browser, csp_violations, width=390, height=844, dark=True)
    sign_in(page, live_app, "alice")

    note = page.locator("#local-model-note")
    expect(note).to_contain_text("being prepared (compiling its server: 45%)")
    page.fill("#message-input", "Hello early")
    page.keyboard.press("Enter")
    expect(page.locator("#composer-error")).to_contain_text("not ready yet (compiling its server: 45%)")
    expect(page.locator("#message-input")).to_have_value("Hello early")  # nothing lost
    screenshot(page, "phone-dark-local-model-preparing")

    local_model_state_write(state_file, LocalModelState("preparing", stage="building", percent=80))
    expect(note).to_contain_text("compiling its server: 80%", timeout=15_000)
    local_model_state_write(state_file, LocalModelState("ready"))
    expect(note).to_contain_text("You are chatting with a tiny built-in model", timeout=15_000)
    page.focus("#message-input")
    page.keyboard.press("Enter")

    expect(page.locator(".msg-assistant.status-complete .msg-body")).to_have_text("Echo: Hello early")
    assert fake_openai.last_messages()[-1]["content"] == "Hello early"
    assert page.locator("#local-model-note[hx-get]").count() == 0  # asking again has stopped
    assert csp_violations == []
