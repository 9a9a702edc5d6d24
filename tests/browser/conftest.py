import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ARTIFACTS, PASSWORD, LiveApp

CHROMIUM = "/usr/bin/chromium"
# The flags this machine's closed network needs (see the project's STACK-NOTES).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = ARTIFACTS / "screenshots"


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `./run test` installs Debian's chromium.")
    # Playwright's sync API runs an event loop in this thread; the test's own
    # database calls are plain sync calls between its steps.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield launched
            launched.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def csp_violations() -> list[str]:
    return []


def open_page(
    browser: Browser,
    violations: list[str],
    *,
    width: int = 1280,
    height: int = 800,
    dark: bool = False,
    locale: str = "en-US",
) -> Page:
    page = browser.new_page(
        viewport={"width": width, "height": height},
        color_scheme="dark" if dark else "light",
        locale=locale,
    )
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.on("pageerror", lambda error: violations.append(f"page error: {error}"))
    return page


def sign_in(page: Page, app: LiveApp, username: str) -> None:
    page.goto(app.url + "accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(app.url)
    page.wait_for_selector("#connection-state[data-state=open]")


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def load_earlier_messages(page: Page) -> int:
    """Scroll up through the open conversation until its first message is loaded, as a
    reader would; returns how many loads that took."""
    loads = 0
    while page.locator(".older-messages").count():
        first = page.locator("#messages .msg").first.get_attribute("id")
        page.locator(".older-messages").scroll_into_view_if_needed()
        expect(page.locator("#messages .msg").first).not_to_have_id(first or "")
        loads += 1
    return loads


def open_conversation(page: Page, app: LiveApp, conversation_id: object) -> None:
    """Go to the conversation's page and wait for its chat socket."""
    page.goto(f"{app.url}c/{conversation_id}/")
    page.wait_for_selector("#connection-state[data-state=open]")
