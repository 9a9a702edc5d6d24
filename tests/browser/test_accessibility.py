"""axe-core (the engine of Deque's axe, as browser extensions and CI tools run it) over the
pages in the states a user sees them: no serious or critical violation anywhere.

axe runs in the page through Playwright's evaluate, which the page's CSP does not govern:
the page itself stays as strict as it is served.
"""

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from conversations.models import Message
from conversations.services import conversation_create
from tests.browser.conftest import open_page, sign_in
from tests.browser.test_chat_ui import send
from tests.conftest import PASSWORD, make_user
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

AXE = Axe()
BLOCKING = {"serious", "critical"}
CODE_REPLY = "Here is the code:\n\n```python\nprint('hello')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |"


def violations(page: Page) -> list[str]:
    """The serious and critical violations on the page as it is now, one line each."""
    found = AXE.run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[node['target'] for node in v['nodes']][:3]}"
        for v in found
        if v["impact"] in BLOCKING
    ]


@pytest.mark.parametrize(
    "look",
    [{}, {"dark": True}, {"width": 390, "height": 844, "locale": "zh-CN"}],
    ids=["desktop-light-en", "desktop-dark-en", "phone-light-zh"],
)
def test_the_chat_pages_have_no_serious_accessibility_violations(
    live_app, fake_openai, browser, csp_violations, look
):
    alice = make_user("alice")
    older = conversation_create(owner=alice, title="An older chat")
    Message.objects.create(conversation=older, author="user", content="Hello")
    page = open_page(browser, csp_violations, **look)
    page.goto(live_app.url + "accounts/login/")
    found = {"sign-in": violations(page)}
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_app.url)
    page.wait_for_selector("#connection-state[data-state=open]")
    found["new chat"] = violations(page)

    fake_openai.queue_reply(Reply(tokens=[CODE_REPLY]))
    send(page, "Show me code", count=1)
    fake_openai.queue_reply(Reply(tokens=["Another", " take"]))
    page.click(".msg-assistant .regenerate")
    expect(page.locator(".branch-count")).to_have_text("2 / 2")
    found["conversation with versions"] = violations(page)

    if look.get("width"):
        page.click(".menu-button")  # the phone's drawer
    page.fill("#search-input", "older")
    expect(page.locator("#search-results .hit")).to_have_count(1)
    found["search results"] = violations(page)
    page.keyboard.press("Escape")

    page.evaluate("document.getElementById('shortcuts').showModal()")
    found["shortcuts"] = violations(page)
    page.goto(live_app.url + "accounts/settings/")
    found["settings"] = violations(page)

    assert {where: lines for where, lines in found.items() if lines} == {}
    assert csp_violations == []


def test_a_screen_reader_hears_the_reply_once_when_it_is_finished(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    fake_openai.queue_reply(
        Reply(
            tokens=["Photosynthesis", " turns", " light", " into", " sugar.", "\n\n```\nCO2 + H2O\n```"],
            delay=0.3,
        )
    )
    page.fill("#message-input", "Explain photosynthesis")
    page.keyboard.press("Enter")

    expect(page.locator(".msg-assistant .msg-body")).to_contain_text("turns")
    while_streaming = page.locator("#announcer").text_content()
    expect(page.locator(".msg-assistant.status-complete")).to_have_count(1)

    expect(page.locator(".msg-assistant .code-copy")).to_have_count(1)  # chat.js's, in the body
    expect(page.locator("#announcer")).to_contain_text("Reply: Photosynthesis turns light into sugar.")
    expect(page.locator("#announcer")).to_contain_text("CO2 + H2O")
    assert "Copy code" not in (page.locator("#announcer").text_content() or "")
    assert "turns" not in (while_streaming or "")
    assert page.locator("#messages[aria-live]").count() == 0  # the tokens are not read one by one
    assert csp_violations == []
