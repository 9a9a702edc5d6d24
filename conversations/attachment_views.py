"""Images attached to messages: the upload, and the file, for its owner only."""

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from conversations import images
from conversations.errors import ChatError
from conversations.models import Attachment

# A multipart body holds some bytes besides the file: its boundaries and part headers.
MULTIPART_ALLOWANCE = 64 * 1024


def _error(status: int, exc: ChatError) -> JsonResponse:
    return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=status)


@require_POST
def attachment_upload(request: HttpRequest) -> HttpResponse:
    """One image (multipart field `file`), checked and stored; its id goes with the message."""
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.CHAT_IMAGE_MAX_BYTES + MULTIPART_ALLOWANCE:
        return _error(413, images.image_too_large())  # refused before the body is read
    upload = request.FILES.get("file")
    if upload is None:
        return _error(400, ChatError(_("Choose an image to upload."), code="missing_file"))
    if upload.size is not None and upload.size > settings.CHAT_IMAGE_MAX_BYTES:
        return _error(413, images.image_too_large())
    try:
        attachment = images.attachment_create(owner=request.user, data=upload.read())
    except ChatError as exc:
        return _error(413 if exc.code == "image_too_large" else 400, exc)
    return JsonResponse(images.attachment_json(attachment), status=201)


@require_http_methods(["GET", "HEAD", "DELETE"])
def attachment_file(request: HttpRequest, attachment_id: int) -> HttpResponseBase:
    """The image itself, to its owner; anyone else is told it does not exist. DELETE
    removes one not sent yet (the composer's ×)."""
    if request.method == "DELETE":
        if not images.attachment_unsent_delete(owner=request.user, attachment_id=attachment_id):
            raise Http404
        return HttpResponse(status=204)
    try:
        attachment = Attachment.objects.get(pk=attachment_id, owner_id=request.user.pk)
    except Attachment.DoesNotExist:
        raise Http404 from None
    response = FileResponse(
        attachment.file.open("rb"),
        content_type=attachment.content_type,
        as_attachment=False,
        filename=f"image-{attachment.pk}.{(attachment.file.name or '').rsplit('.', 1)[-1]}",
    )
    # Private: never kept by a shared cache; nosniff comes from SecurityMiddleware.
    response["Cache-Control"] = "private, max-age=86400"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    return response
