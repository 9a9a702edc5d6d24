"""Images with a message: uploaded, owned, sent to a model that reads them, kept in context."""

import base64
import io
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.test import AsyncClient, Client
from PIL import Image

from conversations import generation
from conversations.images import attachment_create
from conversations.models import Attachment, Message
from conversations.sending import message_send
from conversations.services import ChatError, conversation_create, conversation_delete
from providers.models import ProviderModel
from providers.selectors import ModelPick
from tests.conftest import second_provider_add, wait_for_reply
from tests.conversations.test_api import bearer, read_events
from tests.conversations.test_model_pick import SECOND_LARGE
from tests.images import jpeg_with_gps, png

pytestmark = pytest.mark.django_db(transaction=True)

VISION = ModelPick("second", "second-vision")
acreate = database_sync_to_async(conversation_create)


@pytest.fixture
def second(second_fake, fake_openai):
    second_provider_add(second_fake)
    return second_fake


def image_parts(message: dict) -> list[str]:
    content = message["content"]
    if isinstance(content, str):
        return []
    return [part["image_url"]["url"] for part in content if part["type"] == "image_url"]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- The upload, and who may see it ---------------------------------------------------------


def test_an_uploaded_image_is_stored_re_encoded_and_answered_with_its_id(alice):
    response = signed_in(alice).post("/attachments/", {"file": io.BytesIO(jpeg_with_gps())})

    assert response.status_code == 201
    attachment = Attachment.objects.get(pk=response.json()["id"])
    assert (attachment.owner, attachment.message, attachment.content_type) == (alice, None, "image/jpeg")
    stored = Path(attachment.file.path).read_bytes()
    assert b"SecretCam" not in stored
    assert response.json()["url"] == f"/attachments/{attachment.pk}/"


def test_an_upload_that_is_not_an_image_is_a_400_and_stores_nothing(alice):
    response = signed_in(alice).post("/attachments/", {"file": io.BytesIO(b"<script>alert(1)</script>")})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_image"
    assert not Attachment.objects.exists()


def test_an_upload_too_large_is_a_413(alice, settings):
    settings.CHAT_IMAGE_MAX_BYTES = 2000

    response = signed_in(alice).post("/attachments/", {"file": io.BytesIO(png(400, 400) + b"\x00" * 3000)})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "image_too_large"


def test_the_owner_gets_the_image_inline_and_not_sniffable(alice):
    attachment = attachment_create(owner=alice, data=png())

    response = signed_in(alice).get(f"/attachments/{attachment.pk}/")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline")
    assert "private" in response["Cache-Control"]
    assert response.getvalue() == Path(attachment.file.path).read_bytes()


def test_anyone_else_is_told_the_image_does_not_exist(alice, bob):
    attachment = attachment_create(owner=alice, data=png())

    assert signed_in(bob).get(f"/attachments/{attachment.pk}/").status_code == 404
    assert Client().get(f"/attachments/{attachment.pk}/").status_code in {302, 401, 404}


def test_deleting_the_conversation_deletes_the_image_files(alice, builtin_roles, fake_openai, settings):
    settings.OPENAI_MODEL_VISION = True
    conversation = conversation_create(owner=alice)
    attachment = attachment_create(owner=alice, data=png())
    Message.objects.create(conversation=conversation, author="user", content="q")
    Attachment.objects.filter(pk=attachment.pk).update(message=conversation.messages.get())
    path = Path(attachment.file.path)
    assert path.exists()

    conversation_delete(owner=alice, conversation_id=conversation.pk)

    assert not path.exists() and not Attachment.objects.exists()


# --- Sending ----------------------------------------------------------------------------------


async def send(user, conversation, text, **kwargs):
    exchange = await message_send(owner=user, conversation_id=conversation.pk, content=text, **kwargs)
    return exchange, await wait_for_reply(exchange.reply.pk)


async def upload(user, data=None):
    return await sync_to_async(attachment_create)(owner=user, data=data or png())


async def test_a_vision_model_receives_the_image_as_a_content_part(alice, builtin_roles, second):
    conversation = await acreate(owner=alice)
    image = await upload(alice)

    exchange, reply = await send(
        alice, conversation, "What colour is this?", pick=VISION, attachments=[image.pk]
    )

    assert reply.status == "complete"
    last = second.last_messages()[-1]
    assert last["content"][0] == {"type": "text", "text": "What colour is this?"}
    (url,) = image_parts(last)
    assert url.startswith("data:image/png;base64,")
    picture = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert picture.convert("RGB").getpixel((1, 1)) == (200, 30, 30)
    saved = await Attachment.objects.aget(pk=image.pk)
    assert saved.message_id == exchange.user_message.pk


async def test_a_message_may_be_only_an_image(alice, builtin_roles, second):
    conversation = await acreate(owner=alice)
    image = await upload(alice)

    _exchange, reply = await send(alice, conversation, "", pick=VISION, attachments=[image.pk])

    assert reply.status == "complete"
    (part,) = second.last_messages()[-1]["content"]  # no empty text part before it
    assert part["type"] == "image_url"


async def test_a_model_that_cannot_read_images_is_refused_before_anything_is_sent(
    alice, builtin_roles, second
):
    conversation = await acreate(owner=alice)
    image = await upload(alice)

    with pytest.raises(ChatError, match="cannot read images") as refused:
        await message_send(
            owner=alice,
            conversation_id=conversation.pk,
            content="Hi",
            pick=SECOND_LARGE,
            attachments=[image.pk],
        )

    assert refused.value.code == "model_cannot_read_images"
    assert not await Message.objects.filter(conversation=conversation).aexists()
    assert (await Attachment.objects.aget(pk=image.pk)).message_id is None  # still there to send again
    assert second.requests == []


async def test_someone_elses_or_an_already_sent_image_cannot_be_attached(alice, bob, builtin_roles, second):
    conversation = await acreate(owner=alice)
    bobs = await upload(bob)
    mine = await upload(alice)
    await send(alice, conversation, "first", pick=VISION, attachments=[mine.pk])

    for ids in ([bobs.pk], [mine.pk]):
        with pytest.raises(ChatError) as refused:
            await message_send(owner=alice, conversation_id=conversation.pk, content="again", attachments=ids)
        assert refused.value.code == "invalid_attachment"
    assert (await Attachment.objects.aget(pk=bobs.pk)).message_id is None


async def test_images_stay_in_the_context_of_later_turns(alice, builtin_roles, second):
    conversation = await acreate(owner=alice)
    image = await upload(alice)
    await send(alice, conversation, "Look at this", pick=VISION, attachments=[image.pk])

    await send(alice, conversation, "And what shape was it?")

    earlier = next(m for m in second.last_messages() if m["role"] == "user")
    assert len(image_parts(earlier)) == 1


async def test_a_model_without_vision_later_gets_the_earlier_turns_as_text(alice, builtin_roles, second):
    conversation = await acreate(owner=alice)
    image = await upload(alice)
    await send(alice, conversation, "Look at this", pick=VISION, attachments=[image.pk])

    await send(alice, conversation, "Now just talk", pick=SECOND_LARGE)

    assert [m["content"] for m in second.last_messages() if m["role"] == "user"] == [
        "Look at this",
        "Now just talk",
    ]


async def test_more_images_than_allowed_are_refused(alice, builtin_roles, second, settings):
    settings.CHAT_IMAGES_PER_MESSAGE = 1
    conversation = await acreate(owner=alice)
    images = [await upload(alice), await upload(alice)]

    with pytest.raises(ChatError) as refused:
        await message_send(
            owner=alice,
            conversation_id=conversation.pk,
            content="Hi",
            pick=VISION,
            attachments=[i.pk for i in images],
        )

    assert refused.value.code == "too_many_images"


# --- The API -------------------------------------------------------------------------------------


async def api_stream(token, conversation, **fields):
    return await AsyncClient().post(
        "/chat/stream",
        {"session_id": str(conversation.pk), "message": "What is in it?", **fields},
        content_type="application/json",
        headers=bearer(token),
    )


@pytest.fixture
def token(alice):
    from conversations.tokens import api_token_create

    return api_token_create(user=alice, name="test")[1]


async def test_the_api_takes_image_data_and_image_type_as_the_demo_sends_them(
    alice, token, builtin_roles, second
):
    conversation = await acreate(owner=alice)

    response = await api_stream(
        token,
        conversation,
        provider="second",
        model="second-vision",
        image_data=base64.b64encode(png()).decode(),
        image_type="image/png",
    )
    events = [data for _id, data in await read_events(response)]
    await generation.wait(events[-1]["message_id"])

    assert events[-1]["type"] == "end"
    assert len(image_parts(second.last_messages()[-1])) == 1
    history = await AsyncClient().get(
        "/chat/history", {"session_id": str(conversation.pk)}, headers=bearer(token)
    )
    question = history.json()["messages"][0]
    (image,) = question["images"]
    assert image["content_type"] == "image/png" and image["url"].startswith("/attachments/")


async def test_the_api_takes_a_multipart_upload(alice, token, builtin_roles, second):
    conversation = await acreate(owner=alice)

    response = await AsyncClient().post(
        "/chat/stream",
        {
            "session_id": str(conversation.pk),
            "message": "And this?",
            "provider": "second",
            "model": "second-vision",
            "image": io.BytesIO(png()),
        },
        headers=bearer(token),
    )
    events = [data for _id, data in await read_events(response)]
    await generation.wait(events[-1]["message_id"])

    assert len(image_parts(second.last_messages()[-1])) == 1


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"image_data": "!!! not base64 !!!"}, 400, "invalid_image"),
        ({"image_data": base64.b64encode(b"plain text").decode()}, 400, "invalid_image"),
        ({"image_data": base64.b64encode(png()).decode(), "image_type": "text/html"}, 400, "invalid_image"),
        ({"image_data": base64.b64encode(png()).decode()}, 400, "model_cannot_read_images"),
    ],
)
async def test_a_bad_image_or_a_blind_model_is_a_400_and_nothing_is_kept(
    alice, token, builtin_roles, second, fields, status, code
):
    conversation = await acreate(owner=alice)

    response = await api_stream(token, conversation, provider="second", model="second-large", **fields)

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert not await Message.objects.filter(conversation=conversation).aexists()
    assert not await Attachment.objects.aexists()


@pytest.mark.parametrize("value", [0, False, []])
async def test_image_data_that_is_not_text_is_a_400_even_when_falsy(alice, token, builtin_roles, value):
    conversation = await acreate(owner=alice)

    response = await api_stream(token, conversation, image_data=value)

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_parameter")
    assert not await Message.objects.filter(conversation=conversation).aexists()


async def test_an_image_too_large_for_the_api_is_a_413(alice, token, builtin_roles, second, settings):
    settings.CHAT_IMAGE_MAX_BYTES = 500
    conversation = await acreate(owner=alice)

    response = await api_stream(
        token,
        conversation,
        provider="second",
        model="second-vision",
        image_data=base64.b64encode(png(300, 300) + b"\x00" * 1000).decode(),
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "image_too_large"


async def test_a_models_vision_flag_is_what_decides(alice, builtin_roles, second):
    await ProviderModel.objects.filter(name="second-large").aupdate(vision=True)
    conversation = await acreate(owner=alice)
    image = await upload(alice)

    _exchange, reply = await send(
        alice, conversation, "Now you can", pick=SECOND_LARGE, attachments=[image.pk]
    )

    assert reply.status == "complete" and len(image_parts(second.last_messages()[-1])) == 1
