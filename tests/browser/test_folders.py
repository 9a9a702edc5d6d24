"""Folders and "Select" in the sidebar as a user meets them: a folder made, a conversation
moved into it from its menu and by dragging, a folder deleted; several conversations
ticked and archived, moved or deleted together."""

import pytest
from playwright.sync_api import Page, expect

from conversations.folders import folder_create
from conversations.models import Conversation, Folder
from conversations.services import conversation_create
from tests.browser.conftest import screenshot
from tests.browser.test_chat_ui import PHONE, conversation_page
from tests.browser.test_sidebar import open_menu
from tests.conftest import make_user
from tests.conversations.test_folder_views import folder_name

pytestmark = pytest.mark.django_db(transaction=True)


def folder(page: Page, name: str):
    return page.locator(".folder", has=page.locator(".folder-name", has_text=name))


def test_a_folder_is_made_and_a_conversation_moved_into_it_from_its_menu(
    live_app, fake_openai, browser, csp_violations
):
    alice = make_user("alice")
    trip = conversation_create(owner=alice, title="Trip to Kyoto")
    conversation_create(owner=alice, title="Dinner ideas")
    page = conversation_page(live_app, browser, csp_violations)

    page.get_by_text("+ New folder").click()
    page.get_by_placeholder("Folder name").fill("Travel")
    page.get_by_role("button", name="Create").click()
    expect(folder(page, "Travel")).to_be_visible()
    expect(folder(page, "Travel").locator(".folder-empty")).to_be_visible()

    open_menu(page, trip)
    menu = page.locator(f"#conv-menu-{trip.pk}")
    menu.get_by_text("Move to folder…").click()
    menu.get_by_label("Folder", exact=True).select_option(label="Travel")
    menu.get_by_role("button", name="Move").click()

    travel = folder(page, "Travel")
    expect(travel.locator(f"#conv-{trip.pk}")).to_be_visible()  # the folder opens with it
    expect(travel.locator(".folder-size")).to_have_text("1")
    expect(page.locator(f"#conversation-list #conv-{trip.pk}")).to_have_count(0)
    screenshot(page, "desktop-sidebar-folder")
    assert folder_name(trip) == "Travel"

    page.reload()  # kept: the folder is closed and opens on a click
    travel = folder(page, "Travel")
    travel.locator("summary").click()
    expect(travel.locator(f"#conv-{trip.pk} .conv-title")).to_have_text("Trip to Kyoto")
    assert csp_violations == []


def test_a_conversation_dragged_onto_a_folder_moves_into_it_and_back_out(
    live_app, fake_openai, browser, csp_violations
):
    alice = make_user("alice")
    folder_create(owner=alice, name="Work")
    report = conversation_create(owner=alice, title="Quarterly report")
    page = conversation_page(live_app, browser, csp_violations)

    page.locator(f"#conv-{report.pk}").drag_to(folder(page, "Work").locator("summary"))

    expect(folder(page, "Work").locator(f"#conv-{report.pk}")).to_be_visible()
    assert folder_name(report) == "Work"

    page.locator(f"#conv-{report.pk}").drag_to(page.locator("#conversation-list"))

    expect(page.locator(f"#conversation-list #conv-{report.pk}")).to_be_visible()
    assert Conversation.objects.get(pk=report.pk).folder is None
    assert csp_violations == []


def test_deleting_a_folder_keeps_its_conversations_or_takes_them_with_it(
    live_app, fake_openai, browser, csp_violations
):
    alice = make_user("alice")
    kept_in = folder_create(owner=alice, name="Keep them")
    gone_in = folder_create(owner=alice, name="Lose them")
    stays = conversation_create(owner=alice, title="Stays")
    goes = conversation_create(owner=alice, title="Goes")
    Conversation.objects.filter(pk=stays.pk).update(folder=kept_in)
    Conversation.objects.filter(pk=goes.pk).update(folder=gone_in)
    page = conversation_page(live_app, browser, csp_violations, **PHONE, dark=True, locale="zh-CN")
    page.click(".menu-button")

    folder(page, "Keep them").locator(".conv-menu-button").click()
    page.locator(f"#folder-menu-{kept_in.pk}").get_by_role(
        "button", name="删除文件夹，保留其中的对话"
    ).click()
    expect(folder(page, "Keep them")).to_have_count(0)
    expect(page.locator(f"#conversation-list #conv-{stays.pk}")).to_be_visible()

    folder(page, "Lose them").locator(".conv-menu-button").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"#folder-menu-{gone_in.pk}").get_by_role("button", name="删除文件夹及其中的对话").click()
    expect(folder(page, "Lose them")).to_have_count(0)
    screenshot(page, "phone-dark-zh-sidebar-folders-deleted")
    assert list(Conversation.objects.values_list("title", flat=True)) == ["Stays"]
    assert not Folder.objects.exists()
    assert csp_violations == []


def test_selected_conversations_are_archived_moved_and_deleted_together(
    live_app, fake_openai, browser, csp_violations
):
    alice = make_user("alice")
    folder_create(owner=alice, name="Later")
    one, two, three, four = (conversation_create(owner=alice, title=f"Chat {n}") for n in range(1, 5))
    page = conversation_page(live_app, browser, csp_violations)
    bar = page.locator("#bulk-form")
    expect(page.locator(".bulk-check").first).to_be_hidden()

    page.get_by_role("button", name="Select", exact=True).click()
    expect(bar.locator(".bulk-count")).to_have_text("None selected")
    expect(bar.get_by_role("button", name="Archive")).to_be_disabled()
    page.get_by_label("Select “Chat 1”").check()
    page.get_by_label("Select “Chat 2”").check()
    expect(bar.locator(".bulk-count")).to_have_text("2 selected")
    screenshot(page, "desktop-sidebar-select")
    bar.get_by_role("button", name="Archive").click()

    expect(page.locator(f"#conversation-list #conv-{one.pk}")).to_have_count(0)
    expect(page.locator(f"#conversation-list #conv-{two.pk}")).to_have_count(0)
    expect(bar).to_be_hidden()  # the list came back out of the mode
    assert Conversation.objects.filter(archived_at__isnull=False).count() == 2

    page.get_by_role("button", name="Select", exact=True).click()
    page.get_by_label("Select “Chat 3”").check()
    bar.get_by_label("Folder", exact=True).select_option(label="Later")
    bar.get_by_role("button", name="Move", exact=True).click()
    expect(folder(page, "Later").locator(".folder-size")).to_have_text("1")
    assert folder_name(three) == "Later"

    page.get_by_role("button", name="Select", exact=True).click()
    page.get_by_label("Select “Chat 4”").check()
    page.once("dialog", lambda dialog: dialog.accept())
    bar.get_by_role("button", name="Delete").click()
    expect(page.locator(f"#conv-{four.pk}")).to_have_count(0)
    assert not Conversation.objects.filter(pk=four.pk).exists()
    assert csp_violations == []


def test_cancel_leaves_the_select_mode_with_nothing_ticked(live_app, fake_openai, browser, csp_violations):
    alice = make_user("alice")
    conversation_create(owner=alice, title="Only one")
    page = conversation_page(live_app, browser, csp_violations, **PHONE, locale="zh-CN")
    page.click(".menu-button")

    page.get_by_role("button", name="选择", exact=True).click()
    page.get_by_label("选择“Only one”").check()
    expect(page.locator("#bulk-form .bulk-count")).to_have_text("已选 1 个")
    screenshot(page, "phone-zh-sidebar-select")
    page.get_by_role("button", name="取消").click()

    expect(page.locator("#bulk-form")).to_be_hidden()
    expect(page.locator(".bulk-check")).to_be_hidden()
    page.get_by_role("button", name="选择", exact=True).click()
    expect(page.get_by_label("选择“Only one”")).not_to_be_checked()
    assert csp_violations == []
