"""Sending a photo from the page: by the button and by paste, seen before and after sending."""

import base64
import re

import pytest
from playwright.sync_api import FilePayload, expect

from conversations.models import Attachment
from tests.browser.conftest import open_page, screenshot, sign_in
from tests.conftest import make_user, second_provider_add
from tests.fake_openai import Reply
from tests.images import png

pytestmark = pytest.mark.django_db(transaction=True)

PASTE = """(data) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
  const box = document.getElementById("message-input");
  const paste = new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true });
  box.dispatchEvent(paste);
}"""


def file_payload(name: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": "image/png", "buffer": data}


def image_urls(fake) -> list[str]:
    content = fake.last_messages()[-1]["content"]
    return [part["image_url"]["url"] for part in content if part["type"] == "image_url"]


def test_a_photo_attached_by_the_button_and_one_pasted_reach_a_vision_model(
    live_app, fake_openai, second_fake, browser, csp_violations
):
    make_user("alice")
    second_provider_add(second_fake)
    second_fake.queue_reply(Reply(tokens=["Two", " squares"]))
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    page.locator("#model-select").select_option("second/second-vision")

    page.set_input_files("#attach-input", files=[file_payload("red.png", png())])
    page.evaluate(PASTE, base64.b64encode(png(30, 30, (0, 0, 255))).decode())

    chips = page.locator("#attachments .attachment-chip:not(.uploading) img")
    expect(chips).to_have_count(2)  # thumbnails before sending
    page.fill("#message-input", "What are these?")
    screenshot(page, "desktop-images-before-send")
    page.keyboard.press("Enter")

    expect(page.locator(".msg-assistant.status-complete .msg-body")).to_have_text("Two squares")
    sent = page.locator(".msg-user .msg-image")
    expect(sent).to_have_count(2)
    assert all(url.startswith("data:image/png;base64,") for url in image_urls(second_fake))
    assert len(image_urls(second_fake)) == 2
    expect(page.locator("#attachments .attachment-chip")).to_have_count(0)  # the composer is empty again
    # Served to their owner. The two uploads race, so either may be first. Each is read once
    # it has loaded or failed to (a failed one has no width), not while it may be loading.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.msg-user .msg-image')].every((img) => img.complete)"
    )
    widths = sent.evaluate_all("imgs => imgs.map((img) => img.naturalWidth)")
    assert sorted(widths) == [30, 64]
    screenshot(page, "desktop-images-sent")

    page.reload()

    expect(page.locator(".msg-user .msg-image")).to_have_count(2)
    assert Attachment.objects.filter(message__isnull=False).count() == 2
    assert csp_violations == []


def test_a_model_that_cannot_read_images_says_so_and_keeps_the_image(
    live_app, fake_openai, second_fake, browser, csp_violations
):
    make_user("alice")
    second_provider_add(second_fake)
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")
    page.locator("#model-select").select_option("second/second-large")

    page.set_input_files("#attach-input", files=[file_payload("red.png", png())])
    expect(page.locator("#attachments .attachment-chip:not(.uploading)")).to_have_count(1)
    page.fill("#message-input", "Describe it")
    page.keyboard.press("Enter")

    expect(page.locator("#composer-error")).to_contain_text("cannot read images")
    expect(page.locator("#attachments .attachment-chip")).to_have_count(1)
    assert second_fake.requests == []
    assert csp_violations == []


def test_a_file_that_is_not_an_image_is_refused_with_a_reason(live_app, fake_openai, browser, csp_violations):
    make_user("alice")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    page.set_input_files("#attach-input", files=[file_payload("fake.png", b"not really")])

    expect(page.locator("#composer-error")).to_contain_text("not an image")
    expect(page.locator("#attachments .attachment-chip")).to_have_count(0)
    assert not Attachment.objects.exists()


DROP = """(data) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
  const target = document.getElementById("message-input");
  for (const type of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }
}"""


def test_a_dropped_photo_is_attached_and_removing_it_deletes_the_upload(
    live_app, fake_openai, browser, csp_violations
):
    make_user("alice")
    page = open_page(browser, csp_violations)
    sign_in(page, live_app, "alice")

    page.evaluate(DROP, base64.b64encode(png(40, 20)).decode())

    chip = page.locator("#attachments .attachment-chip:not(.uploading)")
    expect(chip).to_have_count(1)
    expect(page.locator("#composer")).not_to_have_class(re.compile(r"\bdragging\b"))  # the drop ended it
    assert chip.locator("img").evaluate("img => img.complete && img.naturalWidth") == 40
    assert Attachment.objects.filter(message__isnull=True).count() == 1

    with page.expect_response(lambda r: r.request.method == "DELETE") as removed:
        chip.locator(".attachment-remove").click()
    assert removed.value.status == 204
    expect(page.locator("#attachments .attachment-chip")).to_have_count(0)
    assert not Attachment.objects.exists()
    assert csp_violations == []
