"""Images users attach to a message: checked by their content, re-encoded, stored, sent.

An upload is an image only if Pillow can read it as JPEG, PNG, WebP or GIF, within the
size and pixel limits, and it is saved re-encoded: that strips EXIF (GPS, camera) and
anything else that is not the picture itself. Files go through Django's storage API,
so an S3-compatible store can be configured later. They are served to their owner
only (views.attachment_file), and sent to vision models as data URLs.
"""

import base64
import io
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

from conversations.errors import ChatError
from conversations.models import Attachment, Message
from conversations.owners import User, owner_id

# Pillow's format name -> (the MIME type, the format it is stored in, its extension).
FORMATS = {
    "JPEG": ("image/jpeg", "JPEG", "jpg"),
    "PNG": ("image/png", "PNG", "png"),
    "WEBP": ("image/webp", "WEBP", "webp"),
    "GIF": ("image/png", "PNG", "png"),  # the first frame, as a still PNG
}
MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})


@dataclass(frozen=True)
class Encoded:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


def image_too_large() -> ChatError:
    limit = settings.CHAT_IMAGE_MAX_BYTES // (1024 * 1024)
    return ChatError(
        _("This image is too large: at most %(limit)s MB.") % {"limit": limit}, code="image_too_large"
    )


def image_encode(data: bytes) -> Encoded:
    """The image re-encoded, or ChatError (400 `invalid_image`, 413 `image_too_large`)."""
    if len(data) > settings.CHAT_IMAGE_MAX_BYTES:
        raise image_too_large()
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind = probe.format or ""
            width, height = probe.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise _invalid() from None
    if kind not in FORMATS:
        raise _invalid()
    if width * height > settings.CHAT_IMAGE_MAX_PIXELS:
        raise ChatError(
            _("This image has too many pixels: at most %(limit)s million.")
            % {"limit": settings.CHAT_IMAGE_MAX_PIXELS // 1_000_000},
            code="image_too_large",
        )
    content_type, stored_as, extension = FORMATS[kind]
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)
            picture = ImageOps.exif_transpose(image)  # upright, as the camera meant it
            picture.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise _invalid() from None
    side = settings.CHAT_IMAGE_MAX_SIDE
    if max(picture.size) > side:
        # Vision models scale down anyway; a smaller picture costs fewer tokens and bytes.
        picture.thumbnail((side, side))
    if stored_as == "JPEG" and picture.mode not in {"RGB", "L"}:
        picture = picture.convert("RGB")
    elif picture.mode == "P":
        picture = picture.convert("RGBA")
    out = io.BytesIO()
    # No exif=, no icc_profile=, no info: only the pixels are written.
    picture.save(out, format=stored_as, **({"quality": 90} if stored_as in {"JPEG", "WEBP"} else {}))
    return Encoded(out.getvalue(), content_type, extension, picture.width, picture.height)


def _invalid() -> ChatError:
    return ChatError(
        _("This file is not an image Chatsite can read (JPEG, PNG, WebP or GIF)."), code="invalid_image"
    )


def attachment_create(*, owner: User, data: bytes) -> Attachment:
    """Check, re-encode and store an image the owner uploaded; it joins a message when sent."""
    waiting = Attachment.objects.filter(owner_id=owner_id(owner), message__isnull=True).count()
    if waiting >= settings.CHAT_UNSENT_IMAGES_PER_USER:
        raise ChatError(
            _("%(count)s images are waiting to be sent already. Send them, or remove some first.")
            % {"count": waiting},
            code="too_many_unsent_images",
        )
    encoded = image_encode(data)
    attachment = Attachment(
        owner_id=owner_id(owner),
        content_type=encoded.content_type,
        width=encoded.width,
        height=encoded.height,
        size=len(encoded.data),
    )
    attachment.file.save(f"image.{encoded.extension}", ContentFile(encoded.data), save=False)
    attachment.save()
    return attachment


def attachments_copy(*, originals: list[Attachment], target: Message) -> list[Attachment]:
    """These images again, on `target` (an edited message keeps its pictures). New rows
    sharing the stored files: nothing is written to storage, so a transaction that rolls
    back leaves nothing behind, and a file goes only with the last row naming it."""
    return Attachment.objects.bulk_create(
        Attachment(
            owner_id=original.owner_id,
            message=target,
            file=original.file.name,
            content_type=original.content_type,
            width=original.width,
            height=original.height,
            size=original.size,
        )
        for original in originals
    )


def attachment_unsent_delete(*, owner: User, attachment_id: int) -> bool:
    """Remove an image the owner uploaded but has not sent (the composer's ×); False if
    there is none such: someone else's, or sent already (a sent one goes with its message)."""
    return bool(_unsent_delete(pk=attachment_id, owner_id=owner_id(owner)))


@transaction.atomic
def _unsent_delete(**lookup: object) -> int:
    """Delete the unsent images matching `lookup` (their files go too: conversations.apps).
    Locked first: a message being sent with one of them either takes it or finds it gone."""
    ids = list(
        Attachment.objects.select_for_update()
        .filter(message__isnull=True, **lookup)
        .values_list("pk", flat=True)
    )
    _total, by_model = Attachment.objects.filter(pk__in=ids, message__isnull=True).delete()
    return by_model.get(Attachment._meta.label, 0)


def attachment_unsent_purge(*, older_than: timedelta | None = None) -> int:
    """Remove images uploaded and never sent (a closed tab, a change of mind); returns how many."""
    age = older_than if older_than is not None else timedelta(hours=settings.CHAT_UNSENT_IMAGE_HOURS)
    return _unsent_delete(created_at__lt=timezone.now() - age)


def attachment_base64_create(*, owner: User, image_data: str, image_type: str) -> Attachment:
    """The demo API's `image_data` (base64, or a data: URL) and `image_type`."""
    if image_data.startswith("data:"):
        header, _comma, image_data = image_data.partition(",")
        image_type = image_type or header[5:].split(";")[0]
    if image_type and image_type.lower() not in MIME_TYPES:
        raise _invalid()
    # Base64 is 4/3 of the bytes: refuse the too large before decoding it.
    if len(image_data) > settings.CHAT_IMAGE_MAX_BYTES * 4 // 3 + 4:
        raise image_too_large()
    try:
        data = base64.b64decode(image_data, validate=True)
    except ValueError:
        raise ChatError(_("image_data is not valid base64."), code="invalid_image") from None
    return attachment_create(owner=owner, data=data)


def attachment_data_url(attachment: Attachment) -> str:
    """The image inline, as the OpenAI API's `image_url` takes it: the provider needs no
    way back to this server, and no URL of it ever leaves."""
    with attachment.file.open("rb") as stored:
        encoded = base64.b64encode(stored.read()).decode()
    return f"data:{attachment.content_type};base64,{encoded}"


def attachment_json(attachment: Attachment) -> dict[str, object]:
    return {
        "id": attachment.pk,
        "url": reverse("chat:attachment", args=[attachment.pk]),
        "content_type": attachment.content_type,
        "width": attachment.width,
        "height": attachment.height,
        "size": attachment.size,
    }
