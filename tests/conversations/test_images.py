"""What an upload must be to become an image, and what is left of it once stored."""

import io

import pytest
from PIL import Image

from conversations.errors import ChatError
from conversations.images import image_encode
from tests.images import jpeg_with_gps, png


def test_a_png_is_kept_a_png_of_the_same_size():
    encoded = image_encode(png(64, 48))

    assert (encoded.content_type, encoded.width, encoded.height) == ("image/png", 64, 48)
    assert Image.open(io.BytesIO(encoded.data)).format == "PNG"


def test_exif_and_gps_are_stripped_and_the_picture_turned_upright():
    original = jpeg_with_gps(80, 60)
    assert b"SecretCam" in original

    encoded = image_encode(original)

    assert b"SecretCam" not in encoded.data
    stored = Image.open(io.BytesIO(encoded.data))
    assert dict(stored.getexif()) == {}
    assert stored.size == (60, 80)  # the orientation tag was applied, then dropped


def test_a_large_picture_is_scaled_down_to_the_longest_side(settings):
    settings.CHAT_IMAGE_MAX_SIDE = 100

    encoded = image_encode(png(400, 200))

    assert (encoded.width, encoded.height) == (100, 50)


@pytest.mark.parametrize(
    "data",
    [b"not an image at all", b"%PDF-1.7\n...", png()[:40], b"GIF89a" + b"\x00" * 10, b""],
    ids=["text", "pdf", "truncated-png", "broken-gif", "empty"],
)
def test_what_is_not_a_readable_image_is_refused(data):
    with pytest.raises(ChatError) as refused:
        image_encode(data)

    assert refused.value.code == "invalid_image"


def test_an_image_in_a_format_not_offered_is_refused():
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="BMP")

    with pytest.raises(ChatError) as refused:
        image_encode(out.getvalue())

    assert refused.value.code == "invalid_image"


def test_too_many_bytes_are_refused(settings):
    settings.CHAT_IMAGE_MAX_BYTES = 1000

    with pytest.raises(ChatError) as refused:
        image_encode(png(300, 300, (1, 2, 3)) + b"\x00" * 1000)

    assert refused.value.code == "image_too_large"


def test_too_many_pixels_are_refused_before_they_are_decoded(settings):
    settings.CHAT_IMAGE_MAX_PIXELS = 10_000

    with pytest.raises(ChatError, match="too many pixels") as refused:
        image_encode(png(200, 200))

    assert refused.value.code == "image_too_large"


def test_a_gif_keeps_its_first_frame_as_a_still_png():
    out = io.BytesIO()
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 255, 0)]]
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])

    encoded = image_encode(out.getvalue())

    assert encoded.content_type == "image/png"
    assert Image.open(io.BytesIO(encoded.data)).convert("RGB").getpixel((5, 5)) == (255, 0, 0)
