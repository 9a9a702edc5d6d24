"""Picking a model in the page: the reply comes from that model's provider and says so."""

import pytest
from playwright.sync_api import expect

from providers.models import ProviderModel
from tests.browser.conftest import open_page, screenshot, sign_in
from tests.conftest import make_user, second_provider_add
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_user_picks_another_providers_model_and_its_reply_shows_which(
    live_app, fake_openai, second_fake, browser, csp_violations
):
    make_user("alice")
    second_provider_add(second_fake)
    second_fake.queue_reply(Reply(tokens=["Answer", " from", " the", " second", " provider"]))
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    picker = page.locator("#model-select")
    expect(picker.locator("optgroup")).to_have_count(2)
    picker.select_option("second/second-large")
    page.fill("#message-input", "Hello there")
    page.keyboard.press("Enter")

    reply = page.locator(".msg-assistant.status-complete")
    expect(reply.locator(".msg-body")).to_have_text("Answer from the second provider")
    expect(reply.locator(".reply-model")).to_have_text("second-large")
    assert second_fake.requests[-1].body["model"] == "second-large"
    assert fake_openai.requests == []
    screenshot(page, "desktop-model-picker")

    # The pick holds for the next message, and after a reload the picker shows it.
    page.fill("#message-input", "And again")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-assistant.status-complete")).to_have_count(2)
    assert len(second_fake.requests) == 2
    page.reload()
    expect(page.locator("#model-select")).to_have_value("second/second-large")

    page.locator("#model-select").select_option("default/fake-model")
    page.fill("#message-input", "Back to the first")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-assistant.status-complete .reply-model").last).to_have_text("fake-model")
    assert fake_openai.last_messages()[-1]["content"] == "Back to the first"
    assert csp_violations == []


def test_with_one_model_there_is_no_picker(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    expect(page.locator("#message-input")).to_be_visible()
    assert page.locator("#model-select").count() == 0


def test_regenerate_uses_the_model_the_picker_shows_now(
    live_app, fake_openai, second_fake, browser, csp_violations
):
    make_user("alice")
    second_provider_add(second_fake)
    second_fake.queue_reply(Reply(tokens=["A", " second", " opinion"]))
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    page.fill("#message-input", "Tell me")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-assistant.status-complete .reply-model")).to_have_text("fake-model")

    page.locator("#model-select").select_option("second/second-large")
    page.click(".msg-assistant .regenerate")

    expect(page.locator(".msg-assistant.status-complete .msg-body")).to_have_text("A second opinion")
    expect(page.locator(".msg-assistant.status-complete .reply-model")).to_have_text("second-large")
    assert second_fake.last_messages()[-1]["content"] == "Tell me"
    assert csp_violations == []


def test_with_many_models_a_search_picks_one(live_app, fake_openai, second_fake, browser, csp_violations):
    make_user("alice")
    provider = second_provider_add(second_fake)
    for n in range(6):
        ProviderModel.objects.create(provider=provider, name=f"extra-{n}", label=f"Extra {n}")
    second_fake.queue_reply(Reply(tokens=["Seen"]))
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    search = page.locator("#model-search")

    search.fill("vision")
    search.press("Enter")  # the first model whose name holds it

    expect(page.locator("#model-select")).to_have_value("second/second-vision")
    expect(search).to_have_value("")
    expect(page.locator("#message-input")).to_be_focused()
    search.fill("nothing like it")
    search.press("Enter")
    expect(page.locator("#model-select")).to_have_value("second/second-vision")  # no match: the pick stays
    search.fill("extra-2")
    search.press("Enter")  # by the model's id
    expect(page.locator("#model-select")).to_have_value("second/extra-2")
    search.fill("Extra 4 · Second Cloud")  # a suggestion chosen: the whole of it
    expect(page.locator("#model-select")).to_have_value("second/extra-4")
    page.fill("#message-input", "Hello")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-assistant.status-complete .reply-model")).to_have_text("extra-4")
    assert second_fake.requests[-1].body["model"] == "extra-4"
    screenshot(page, "desktop-model-search")
    assert csp_violations == []


def test_with_a_few_models_there_is_no_search(live_app, fake_openai, second_fake, browser, csp_violations):
    make_user("alice")
    second_provider_add(second_fake)
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    expect(page.locator("#model-select")).to_be_visible()
    assert page.locator("#model-search").count() == 0
