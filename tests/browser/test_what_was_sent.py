"""A conversation's note set from its menu, and "What was sent" under a reply, as a user
meets them: the note goes upstream with the next reply, and the reply shows the message
list its request held (the system message's text hidden from a user who is not staff)."""

import pytest
from playwright.sync_api import expect

from conversations.instructions import NOTE_HEADING
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from tests.browser.conftest import open_conversation, screenshot
from tests.browser.test_chat_ui import PHONE, conversation_page, send
from tests.browser.test_sidebar import open_menu
from tests.conftest import make_user
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_a_note_from_the_menu_goes_upstream_and_what_was_sent_shows_the_messages(
    live_app, fake_openai, browser, csp_violations, device
):
    alice = make_user("alice")
    conversation = conversation_create(owner=alice, title="Trip planning")
    phone = device == "phone"
    options = {**PHONE, "dark": True, "locale": "zh-CN"} if phone else {}
    page = conversation_page(live_app, browser, csp_violations, **options)
    open_conversation(page, live_app, conversation.pk)
    if phone:
        page.click(".menu-button")

    open_menu(page, conversation)
    menu = page.locator(f"#conv-menu-{conversation.pk}")
    menu.locator(".menu-move summary", has_text="本对话的备注" if phone else "Note for this chat").click()
    menu.locator("textarea[name=note]").fill("We travel in April.")
    menu.get_by_role("button", name="保存备注" if phone else "Save note").click()
    expect(menu.get_by_role("status")).to_be_visible()
    page.keyboard.press("Escape")  # the menu closes
    if phone:
        page.keyboard.press("Escape")  # and the drawer

    fake_openai.queue_reply(Reply(tokens=["Go", " to", " Kyoto."]))
    fake_openai.queue_reply(Reply(tokens=["Then", " Nara."]))
    send(page, "Where first?", count=1)
    send(page, "And then?", count=2)

    system = fake_openai.last_messages()[0]["content"]
    assert system.endswith(f"{NOTE_HEADING}\nWe travel in April.")
    last = page.locator(".msg-assistant").last
    last.locator(".msg-sent summary").click()
    items = last.locator(".sent-item")
    expect(items).to_have_count(4)  # the system message, the first turn, the question
    texts = last.locator(".sent-item .sent-text").all_inner_texts()
    assert texts[1:] == ["Where first?", "Go to Kyoto.", "And then?"]
    assert "We travel in April." not in texts[0]  # not staff: the system message is not shown
    screenshot(page, f"{device}-what-was-sent")
    assert csp_violations == []


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_the_page_marks_where_the_summarised_messages_end(
    live_app, fake_openai, browser, csp_violations, device
):
    alice = make_user("alice")
    conversation = conversation_create(owner=alice, title="A long trip")
    written = []
    for n in range(3):
        written.append(
            Message.objects.create(conversation=conversation, author="user", content=f"Question {n}")
        )
        written.append(
            Message.objects.create(conversation=conversation, author="assistant", content=f"Answer {n}")
        )
    Conversation.objects.filter(pk=conversation.pk).update(
        summary="The user asked two questions about Kyoto.", summary_until=written[3].pk
    )
    phone = device == "phone"
    options = {**PHONE, "dark": True, "locale": "zh-CN"} if phone else {}
    page = conversation_page(live_app, browser, csp_violations, **options)
    open_conversation(page, live_app, conversation.pk)

    marker = page.locator(".summary-marker")
    expect(marker.locator("summary")).to_have_text(
        "早先的消息已摘要" if phone else "Earlier messages summarised"
    )
    marker.locator("summary").click()

    expect(marker.locator(".summary-text")).to_have_text("The user asked two questions about Kyoto.")
    following = page.locator(f"#msg-{written[4].pk}")
    assert marker.evaluate("(el, next) => el.nextElementSibling === next", following.element_handle())
    screenshot(page, f"{device}-summary-marker")
    assert csp_violations == []
