"""The chat page as a demanding user meets it (issue 11): menus, copying, live Markdown, phones, keyboards."""

import pytest
from playwright.sync_api import Browser, Page, expect

from conversations.models import Conversation, Message
from conversations.services import conversation_create
from tests.browser.conftest import open_page, screenshot, sign_in
from tests.conftest import LiveApp, make_user
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 740}
CODE_REPLY = "Here is the code:\n\n```python\nprint('hello')\nx = 1\n```\n\nRun it."
TABLE_REPLY = (
    "| column | another column | description |\n"
    "|---|---|---|\n"
    "| photosynthesis | chlorophyll | converts light into chemical energy |\n"
    "| respiration | mitochondria | releases energy stored in glucose |\n"
)


def send(page: Page, text: str, *, count: int) -> None:
    page.fill("#message-input", text)
    page.keyboard.press("Enter")
    expect(page.locator(".msg-assistant.status-complete")).to_have_count(count)


def conversation_page(live_app: LiveApp, browser: Browser, violations: list[str], **page_options) -> Page:
    page = open_page(browser, violations, **page_options)
    page.set_default_timeout(5000)  # a click that cannot land fails fast
    sign_in(page, live_app, "alice")
    return page


def grant_clipboard(page: Page, live_app: LiveApp) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_app.url.rstrip("/"))


# --- 4. The ⋯ menu's Rename can be clicked; the heading and the tab follow the new title ---------


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_rename_from_the_menu_renames_the_heading_and_the_tab(
    live_app, fake_openai, browser, csp_violations, device
):
    alice = make_user("alice")
    # Enough conversations that the open one sits at the bottom of the list.
    conversations = [conversation_create(owner=alice, title=f"Chat number {n}") for n in range(14)]
    oldest = conversations[0]
    page = conversation_page(live_app, browser, csp_violations, **(PHONE if device == "phone" else {}))
    page.goto(f"{live_app.url}c/{oldest.pk}/")
    page.wait_for_selector("#connection-state[data-state=open]")
    expect(page).to_have_title("Chat number 0 · Chatsite")
    if device == "phone":
        page.click(".menu-button")
        expect(page.locator(".sidebar")).to_have_css("transform", "none")

    page.click(f"#conv-{oldest.pk} .conv-menu-button")
    menu = page.locator(f"#conv-menu-{oldest.pk}")
    expect(menu).to_be_in_viewport()
    expect(menu.locator("input[name=title]")).to_be_focused()
    screenshot(page, f"{device}-rename-menu")
    # The whole menu shows, inside the window, on top: its Rename button is where a click lands.
    assert menu.evaluate("m => m.scrollWidth <= m.clientWidth && m.scrollHeight <= m.clientHeight")
    for selector in [f"#conv-menu-{oldest.pk} .rename button", f"#conv-menu-{oldest.pk} .danger"]:
        box, outer = page.locator(selector).bounding_box(), menu.bounding_box()
        assert box is not None and outer is not None
        assert outer["x"] <= box["x"] and box["x"] + box["width"] <= outer["x"] + outer["width"]
        assert box["x"] >= 0 and box["x"] + box["width"] <= page.evaluate("window.innerWidth")
        centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
        assert page.evaluate(
            "([x, y, sel]) => document.elementFromPoint(x, y) === document.querySelector(sel)",
            [*centre, selector],
        )
    menu.locator("input[name=title]").fill("Photosynthesis notes")
    menu.locator(".rename button").click()  # Playwright refuses a click another element would get

    expect(page.locator(f"#conv-{oldest.pk} .conv-title")).to_have_text("Photosynthesis notes")
    expect(page.locator("#chat-header .chat-title")).to_have_text("Photosynthesis notes")
    expect(page).to_have_title("Photosynthesis notes · Chatsite")
    oldest.refresh_from_db()
    assert oldest.title == "Photosynthesis notes"
    assert csp_violations == []


def test_renaming_another_conversation_keeps_the_heading(live_app, fake_openai, browser, csp_violations):
    alice = make_user("alice")
    shown = conversation_create(owner=alice, title="Shown")
    other = conversation_create(owner=alice, title="Other")
    page = conversation_page(live_app, browser, csp_violations)
    page.goto(f"{live_app.url}c/{shown.pk}/")
    page.wait_for_selector("#connection-state[data-state=open]")

    page.click(f"#conv-{other.pk} .conv-menu-button")
    page.fill(f"#conv-menu-{other.pk} input[name=title]", "Other, renamed")
    page.click(f"#conv-menu-{other.pk} .rename button")

    expect(page.locator(f"#conv-{other.pk} .conv-title")).to_have_text("Other, renamed")
    expect(page.locator("#chat-header .chat-title")).to_have_text("Shown")
    expect(page).to_have_title("Shown · Chatsite")


# --- 5. Copy on every message ------------------------------------------------------------------


def test_every_message_can_be_copied(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    page = conversation_page(live_app, browser, csp_violations)
    grant_clipboard(page, live_app)
    send(page, "First question", count=1)
    send(page, "Second question", count=2)

    copies = page.locator(".msg .msg-actions .copy")
    expect(copies).to_have_count(4)
    for n in range(4):
        expect(copies.nth(n)).to_be_visible()
    first_reply = page.locator(".msg-assistant").first
    first_reply.locator(".copy").click()

    expect(first_reply.locator(".copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "Echo: First question"
    page.locator(".msg-user").first.locator(".copy").click()
    expect(page.locator(".msg-user").first.locator(".copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "First question"
    # Regenerate on every reply (a new branch from there); an earlier reply's shows on
    # hover or focus, the last one's always.
    regenerate = page.locator(".regenerate")
    expect(regenerate).to_have_count(2)
    page.evaluate("document.activeElement.blur()")
    page.locator("#message-input").hover()
    expect(regenerate.first).to_have_css("opacity", "0")
    expect(regenerate.last).to_have_css("opacity", "1")
    first_reply.hover()
    expect(regenerate.first).to_have_css("opacity", "1")
    assert csp_violations == []


# --- 6. A copy button per code block -------------------------------------------------------------


@pytest.mark.parametrize(("locale", "copied"), [("en-US", "Copied"), ("zh-CN", "已复制")])
def test_each_code_block_has_a_keyboard_reachable_copy_button(
    live_app, fake_openai, browser, csp_violations, locale, copied
):
    make_user("alice")
    fake_openai.queue_reply(Reply(tokens=[CODE_REPLY]))
    page = conversation_page(live_app, browser, csp_violations, locale=locale)
    grant_clipboard(page, live_app)
    send(page, "Show me code", count=1)

    button = page.locator(".msg-assistant .code-copy")
    expect(button).to_have_count(1)
    expect(button).to_be_visible()
    # Tab reaches it: from the message's own Copy button backwards (Shift+Tab).
    page.locator(".msg-assistant .msg-actions .copy").focus()
    for _ in range(4):
        if page.evaluate("document.activeElement.classList.contains('code-copy')"):
            break
        page.keyboard.press("Shift+Tab")
    expect(button).to_be_focused()
    page.keyboard.press("Enter")

    expect(button).to_have_text(copied)
    assert page.evaluate("navigator.clipboard.readText()") == "print('hello')\nx = 1"
    expect(page.locator("#announcer")).to_have_text(copied)
    # Copying the whole message leaves the button's label out.
    page.locator(".msg-assistant .msg-actions .copy").click()
    expect(page.locator(".msg-assistant .msg-actions .copy")).to_have_text(copied)
    whole = page.evaluate("navigator.clipboard.readText()")
    assert (
        "print('hello')" in whole
        and "Run it." in whole
        and "Copy code" not in whole
        and "复制代码" not in whole
    )
    assert csp_violations == []


# --- 7. Markdown while streaming -----------------------------------------------------------------

STREAMED = [
    "**Photo",
    "synthesis** is",
    " how plants eat.\n\n",
    "- light\n",
    "- water\n",
    "- air",
    "\n\nDone.",
]


def test_markdown_is_rendered_while_the_reply_streams(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    # The model writes five tokens (a paragraph, then two list items), then waits.
    fake_openai.queue_reply(Reply(tokens=STREAMED, delay=0.05, hang_after_tokens=5))
    page = conversation_page(live_app, browser, csp_violations)
    page.fill("#message-input", "How do plants eat?")
    page.keyboard.press("Enter")

    streaming = page.locator(".msg-assistant.status-streaming")
    expect(streaming.locator("strong")).to_have_text("Photosynthesis", timeout=10000)
    expect(streaming.locator("li")).to_have_count(2, timeout=10000)
    assert "**" not in streaming.inner_text()
    # The finished paragraph is not sent again: one <p> before the tail, the list in it.
    assert streaming.locator(".msg-body > p").count() == 1
    screenshot(page, "desktop-streaming-markdown")
    fake_openai.release()

    complete = page.locator(".msg-assistant.status-complete")
    expect(complete.locator("li")).to_have_count(3, timeout=10000)
    expect(complete.locator("strong")).to_have_text("Photosynthesis")
    assert Message.objects.get(author="assistant").content == "".join(STREAMED)
    assert csp_violations == []


# --- 8. Phones: tables scroll sideways, and the title keeps its line -----------------------------


def test_on_a_phone_tables_scroll_and_words_stay_whole(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    fake_openai.queue_reply(Reply(tokens=[TABLE_REPLY]))
    page = conversation_page(live_app, browser, csp_violations, **PHONE)
    send(page, "A table please", count=1)

    table = page.locator(".msg-assistant table")
    expect(table).to_be_visible()
    # Every single word of a cell is on one line (a word broken "col/um/n" has several boxes).
    broken = page.evaluate(
        """() => {
          const broken = [];
          for (const cell of document.querySelectorAll('.msg-assistant th, .msg-assistant td')) {
            const text = cell.firstChild;
            const words = text.textContent.split(' ');
            let at = 0;
            for (const word of words) {
              const range = document.createRange();
              range.setStart(text, at); range.setEnd(text, at + word.length);
              if (range.getClientRects().length > 1) broken.push(word);
              at += word.length + 1;
            }
          }
          return broken;
        }"""
    )
    assert broken == []
    assert table.evaluate("t => t.scrollWidth > t.clientWidth")  # it scrolls sideways instead
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # the page itself does not
    screenshot(page, "phone-table")


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_on_a_phone_the_title_keeps_its_line_beside_the_role(
    live_app, fake_openai, browser, csp_violations, locale
):
    alice = make_user("alice")
    conversation = conversation_create(
        owner=alice, role_slug="programmer", title="How plants turn sunlight into sugar"
    )
    page = conversation_page(live_app, browser, csp_violations, locale=locale, **PHONE)
    page.goto(f"{live_app.url}c/{conversation.pk}/")
    page.wait_for_selector("#connection-state[data-state=open]")

    title = page.locator("#chat-header .chat-title").bounding_box()
    badge = page.locator("#chat-header .role-badge").bounding_box()
    assert title is not None and badge is not None
    assert title["width"] >= 260  # most of the 375 px line, not a few characters
    assert badge["y"] >= title["y"] + title["height"] - 1  # the role sits under the title
    expect(page.locator("#chat-header .role-badge")).to_be_visible()
    screenshot(page, f"phone-header-{locale}")


# --- 9. No htmx error for the second message ---------------------------------------------------


def test_later_messages_log_no_htmx_errors(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    page = conversation_page(live_app, browser, csp_violations)
    logged: list[str] = []
    page.on("console", lambda message: logged.append(message.text))

    send(page, "One", count=1)
    expect(page.locator("#welcome")).to_be_hidden()
    send(page, "Two", count=2)
    send(page, "Three", count=3)

    assert [text for text in logged if "htmx:" in text or "oobError" in text] == []
    assert csp_violations == []


# --- 10. Keyboard and screen readers ---------------------------------------------------------


def focused(page: Page) -> str:
    return page.evaluate(
        "(() => { const e = document.activeElement; "
        "return (e.closest('.sidebar') ? 'sidebar:' : '') + e.localName + '.' + e.className; })()"
    )


def test_on_a_phone_the_menu_button_is_reachable_and_the_closed_drawer_is_not(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = conversation_page(live_app, browser, csp_violations, **PHONE)
    send(page, "Hello", count=1)
    page.evaluate("document.activeElement.blur()")

    stops = []
    for _ in range(12):
        page.keyboard.press("Tab")
        stops.append(focused(page))
    assert not [stop for stop in stops if stop.startswith("sidebar:")]
    assert "button.icon-button menu-button" in stops

    page.locator(".menu-button").focus()
    expect(page.locator(".menu-button")).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    expect(page.locator(".sidebar")).to_have_css("transform", "none")
    expect(page.locator(".menu-button")).to_have_attribute("aria-expanded", "true")
    assert focused(page).startswith("sidebar:")  # focus moved into the drawer
    page.keyboard.press("Tab")
    assert focused(page).startswith("sidebar:")  # the page behind is inert

    page.keyboard.press("Escape")
    expect(page.locator(".sidebar")).to_be_hidden()
    expect(page.locator(".menu-button")).to_be_focused()
    assert csp_violations == []


def test_the_edit_box_has_cancel_and_escape_closes_it(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    page = conversation_page(live_app, browser, csp_violations)
    send(page, "Original text", count=1)
    edit = page.locator(".msg-edit")

    page.click(".msg-edit summary")
    page.fill(".msg-edit textarea", "Changed my mind")
    screenshot(page, "desktop-edit-box")
    page.keyboard.press("Escape")
    expect(edit).not_to_have_attribute("open", "")
    expect(page.locator(".msg-edit summary")).to_be_focused()

    page.click(".msg-edit summary")
    expect(page.locator(".msg-edit textarea")).to_have_value("Original text")  # the draft was dropped
    page.click(".msg-edit-cancel")
    expect(edit).not_to_have_attribute("open", "")
    assert list(Message.objects.filter(author="user").values_list("content", flat=True)) == ["Original text"]
    assert Conversation.objects.count() == 1
    assert csp_violations == []


@pytest.mark.parametrize(("locale", "connected"), [("en-US", "Connected"), ("zh-CN", "已连接")])
def test_the_connection_state_is_text_for_assistive_technology(
    live_app, fake_openai, browser, csp_violations, locale, connected
):
    make_user("alice")
    page = conversation_page(live_app, browser, csp_violations, locale=locale)

    state = page.locator("#connection-state [role=status]")
    expect(state).to_have_text(connected)
    assert page.get_by_role("status").filter(has_text=connected).count() == 1


# --- Screenshots of the fixed screens: phone and desktop, light and dark, English and Chinese ----


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_screenshots_of_the_fixed_screens(
    live_app, fake_openai, browser, csp_violations, device, dark, locale
):
    alice = make_user("alice")
    for n in range(3):
        conversation_create(owner=alice, title=f"Earlier chat {n}")
    fake_openai.queue_reply(Reply(tokens=[CODE_REPLY]))
    fake_openai.queue_reply(Reply(tokens=[TABLE_REPLY]))
    size = PHONE if device == "phone" else {}
    page = conversation_page(live_app, browser, csp_violations, dark=dark, locale=locale, **size)
    send(page, "Show me code", count=1)
    send(page, "And a table about how plants turn sunlight into sugar", count=2)
    name = f"{device}-{'dark' if dark else 'light'}-{locale[:2]}"
    grant_clipboard(page, live_app)
    page.locator(".msg-assistant .code-copy").first.click()  # shows "Copied"
    screenshot(page, f"{name}-chat")

    current = Conversation.objects.order_by("-created_at").first()
    assert current is not None
    if device == "phone":
        page.click(".menu-button")
        expect(page.locator(".sidebar")).to_have_css("transform", "none")
    page.click(f"#conv-{current.pk} .conv-menu-button")
    expect(page.locator(f"#conv-menu-{current.pk}")).to_be_visible()
    screenshot(page, f"{name}-menu")
    assert csp_violations == []


def test_a_finished_reply_with_code_is_scrolled_into_view(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    long_code = "\n\n".join(f"Step {n}:\n\n```python\nprint({n})\n```" for n in range(12))
    fake_openai.queue_reply(Reply(tokens=[long_code]))
    page = conversation_page(live_app, browser, csp_violations)

    send(page, "Show me many steps", count=1)

    # The finished render and its code buttons make the reply taller after it arrived:
    # the page still ends at the reply's own actions.
    expect(page.locator(".msg-assistant .code-copy")).to_have_count(12)
    page.wait_for_function(
        "() => { const b = document.getElementById('messages');"
        " return b.scrollHeight - b.scrollTop - b.clientHeight < 5; }"
    )
    expect(page.locator(".msg-assistant .msg-actions .copy")).to_be_in_viewport()


# --- Feedback on a reply --------------------------------------------------------------------------


def test_a_reply_can_be_rated_and_commented_and_it_stays_after_a_reload(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = conversation_page(live_app, browser, csp_violations)
    send(page, "First question", count=1)
    reply = page.locator(".msg-assistant").first

    reply.locator(".rate-down").click()
    expect(reply.locator(".rate-down")).to_have_attribute("aria-pressed", "true")
    reply.locator(".feedback-comment summary").click()
    reply.locator(".feedback-comment textarea").fill("Too short.")
    # The reload must not cut the save short: the saved form comes back from the server.
    with page.expect_response(lambda response: response.request.method == "POST") as saved:
        reply.locator(".feedback-comment button").click()
    assert saved.value.ok
    expect(reply.locator(".feedback-comment textarea")).to_have_value("Too short.")
    page.reload()

    again = page.locator(".msg-assistant").first
    expect(again.locator(".rate-down")).to_have_attribute("aria-pressed", "true")
    expect(again.locator(".rate-up")).to_have_attribute("aria-pressed", "false")
    expect(again.locator(".feedback-comment textarea")).to_have_value("Too short.")
    given = Message.objects.get(author="assistant").feedback
    assert (given.rating, given.comment) == (-1, "Too short.")
    assert csp_violations == []
