"""Images uploaded and not sent yet: removed by their owner, bounded, expired; and the
files of an edited message, a deleted account, and the headers they are served with."""

import io
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from accounts.services import user_delete
from conversations import lifecycle
from conversations.images import attachment_create, attachment_unsent_purge, attachments_copy
from conversations.models import Attachment, Message
from conversations.sending import message_edit, message_send
from conversations.services import ChatError, conversation_create
from providers.selectors import ModelPick
from tests.conftest import wait_for_reply
from tests.conversations.test_attachments import VISION, image_parts, second, signed_in  # noqa: F401
from tests.images import png

pytestmark = pytest.mark.django_db(transaction=True)

BLIND = ModelPick("second", "second-large")  # a model of the second provider that reads no images


def sent(owner) -> Attachment:
    """One of the owner's images, sent with a message."""
    conversation = conversation_create(owner=owner)
    message = Message.objects.create(conversation=conversation, author="user", content="q")
    attachment = attachment_create(owner=owner, data=png())
    Attachment.objects.filter(pk=attachment.pk).update(message=message)
    attachment.refresh_from_db()
    return attachment


def test_the_owner_removes_an_unsent_image_and_its_file(alice):
    attachment = attachment_create(owner=alice, data=png())
    path = Path(attachment.file.path)

    response = signed_in(alice).delete(f"/attachments/{attachment.pk}/")

    assert response.status_code == 204
    assert not Attachment.objects.filter(pk=attachment.pk).exists()
    assert not path.exists()


def test_a_sent_image_or_someone_elses_cannot_be_removed(alice, bob, builtin_roles):
    mine_sent = sent(alice)
    bobs = attachment_create(owner=bob, data=png())

    assert signed_in(alice).delete(f"/attachments/{mine_sent.pk}/").status_code == 404
    assert signed_in(alice).delete(f"/attachments/{bobs.pk}/").status_code == 404

    assert Path(mine_sent.file.path).exists() and Path(bobs.file.path).exists()
    assert Attachment.objects.count() == 2


def test_uploads_waiting_to_be_sent_are_bounded_per_user(alice, bob, settings):
    settings.CHAT_UNSENT_IMAGES_PER_USER = 2
    for _ in range(2):
        assert signed_in(alice).post("/attachments/", {"file": io.BytesIO(png())}).status_code == 201

    refused = signed_in(alice).post("/attachments/", {"file": io.BytesIO(png())})

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "too_many_unsent_images"
    assert "waiting to be sent" in refused.json()["error"]["message"]
    assert Attachment.objects.filter(owner=alice).count() == 2
    # Another user's uploads are their own count.
    assert signed_in(bob).post("/attachments/", {"file": io.BytesIO(png())}).status_code == 201


def test_images_never_sent_are_removed_after_the_configured_hours(alice, builtin_roles, settings):
    settings.CHAT_UNSENT_IMAGE_HOURS = 24
    stale = attachment_create(owner=alice, data=png())
    fresh = attachment_create(owner=alice, data=png())
    kept_sent = sent(alice)
    Attachment.objects.filter(pk__in=[stale.pk, kept_sent.pk]).update(
        created_at=timezone.now() - timedelta(hours=25)
    )

    assert attachment_unsent_purge() == 1

    assert set(Attachment.objects.values_list("pk", flat=True)) == {fresh.pk, kept_sent.pk}
    assert not Path(stale.file.path).exists()


async def test_the_running_servers_reaper_removes_stale_unsent_images(alice):
    stale = await sync_to_async(attachment_create)(owner=alice, data=png())
    await Attachment.objects.filter(pk=stale.pk).aupdate(created_at=timezone.now() - timedelta(days=2))

    await lifecycle.reap_once()

    assert not await Attachment.objects.filter(pk=stale.pk).aexists()
    assert not await sync_to_async(Path(stale.file.path).exists)()


def test_the_image_route_forbids_scripts_and_sandboxes_the_file(alice):
    attachment = attachment_create(owner=alice, data=png())

    response = signed_in(alice).get(f"/attachments/{attachment.pk}/")
    response.close()  # the file it streams
    policy = response["Content-Security-Policy"]

    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert directives["default-src"] == ["'none'"]
    assert "sandbox" in directives
    assert "script-src" not in directives  # default-src 'none' covers it


def test_deleting_the_account_deletes_every_image_file(alice, builtin_roles):
    paths = [Path(sent(alice).file.path), Path(attachment_create(owner=alice, data=png()).file.path)]
    assert all(path.exists() for path in paths)

    user_delete(user=alice)

    assert not any(path.exists() for path in paths)
    assert not Attachment.objects.exists()


async def test_an_edited_message_keeps_its_images(alice, builtin_roles, second):  # noqa: F811
    conversation = await sync_to_async(conversation_create)(owner=alice)
    image = await sync_to_async(attachment_create)(owner=alice, data=png())
    first = await message_send(
        owner=alice,
        conversation_id=conversation.pk,
        content="What is this?",
        pick=VISION,
        attachments=[image.pk],
    )
    await wait_for_reply(first.reply.pk)

    edited = await message_edit(
        owner=alice, conversation_id=conversation.pk, content="What colour is this?", pick=VISION
    )
    await wait_for_reply(edited.reply.pk)

    asked = next(m for m in reversed(second.last_messages()) if m["role"] == "user")
    assert len(image_parts(asked)) == 1  # the model saw the picture with the new text
    copies = [a async for a in Attachment.objects.filter(message_id=edited.user_message.pk)]
    assert len(copies) == 1 and copies[0].pk != image.pk
    original = await Attachment.objects.aget(pk=image.pk)
    assert original.message_id == first.user_message.pk  # the earlier version keeps its own


def test_an_image_two_versions_show_keeps_its_file_until_the_last_goes(alice, builtin_roles):
    original = sent(alice)
    first = Message.objects.get(attachments=original)
    edited = Message.objects.create(conversation=first.conversation, author="user", content="q2")
    (copy,) = attachments_copy(originals=[original], target=edited)
    path = Path(original.file.path)

    first.delete()
    assert path.exists()
    assert Path(Attachment.objects.get(pk=copy.pk).file.path) == path

    edited.delete()
    assert not path.exists()


async def test_an_edit_for_a_model_that_cannot_read_images_says_the_message_has_some(
    alice,
    builtin_roles,
    second,  # noqa: F811
):
    conversation = await sync_to_async(conversation_create)(owner=alice)
    image = await sync_to_async(attachment_create)(owner=alice, data=png())
    first = await message_send(
        owner=alice, conversation_id=conversation.pk, content="What?", pick=VISION, attachments=[image.pk]
    )
    await wait_for_reply(first.reply.pk)
    asked_before = len(second.requests)

    with pytest.raises(ChatError) as refused:
        await message_edit(
            owner=alice,
            conversation_id=conversation.pk,
            content="Which?",
            pick=ModelPick("second", "second-large"),
        )

    assert refused.value.code == "model_cannot_read_images"
    assert "this message has some" in refused.value.message
    assert len(second.requests) == asked_before
    # Nothing was set aside: the message and its image are as they were.
    assert await Attachment.objects.filter(message_id=first.user_message.pk).acount() == 1
    assert await Attachment.objects.acount() == 1
