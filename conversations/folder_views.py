"""The sidebar's folders: make, rename and delete one, list what is in it, and move a
conversation into one (from its menu, or dragged) or out again.

Each change answers with the whole list re-rendered, the folder it touched open; a name
refused answers 422 with the list saying why (the page swaps a 422 in)."""

from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from conversations import folders
from conversations.errors import ChatError
from conversations.models import Conversation, Folder
from conversations.selectors import conversation_get
from conversations.sidebar import folder_items
from conversations.sidebar_views import current_conversation, form_fields, sidebar_lists
from conversations.views import HtmxHttpRequest


def _refused(request: HtmxHttpRequest, error: ChatError, *, new_folder: bool = False) -> HttpResponse:
    """The list saying why (and the "New folder" form open again, for a name it refused)."""
    if not request.htmx:
        return HttpResponse(error.message, status=400, content_type="text/plain; charset=utf-8")
    return sidebar_lists(request, list_error=error.message, new_folder_open=new_folder, status=422)


def _changed(request: HtmxHttpRequest, folder: Folder | None) -> HttpResponse:
    if not request.htmx:
        return redirect("chat:home")
    return sidebar_lists(request, open_folder=folder)


@require_POST
def folder_create(request: HtmxHttpRequest) -> HttpResponse:
    try:
        folder = folders.folder_create(owner=request.user, name=request.POST.get("name", ""))
    except ChatError as exc:
        return _refused(request, exc, new_folder=True)
    return _changed(request, folder)


@require_GET
def folder_conversations(request: HtmxHttpRequest, folder_id: int) -> HttpResponse:
    """What is in the folder, when it is opened."""
    try:
        folder = folders.folder_get(owner=request.user, folder_id=folder_id)
    except Folder.DoesNotExist:
        raise Http404("No such folder.") from None
    return render(
        request,
        "chat/frames/sidebar_items.html",
        {"items": folder_items(owner=request.user, folder=folder), "current": current_conversation(request)},
    )


@require_POST
def folder_rename(request: HtmxHttpRequest, folder_id: int) -> HttpResponse:
    try:
        folder = folders.folder_rename(
            owner=request.user, folder_id=folder_id, name=request.POST.get("name", "")
        )
    except Folder.DoesNotExist:
        raise Http404("No such folder.") from None
    except ChatError as exc:
        return _refused(request, exc)
    return _changed(request, folder)


@require_POST
def folder_delete(request: HtmxHttpRequest, folder_id: int) -> HttpResponse:
    """`conversations`: "keep" leaves them in no folder, "delete" deletes them too."""
    choice = request.POST.get("conversations")
    if choice not in {"keep", "delete"}:
        # Nothing is deleted on a request that does not say what becomes of them.
        return HttpResponseBadRequest(
            "conversations must be keep or delete.", content_type="text/plain; charset=utf-8"
        )
    try:
        deleted = folders.folder_delete(
            owner=request.user, folder_id=folder_id, with_conversations=choice == "delete"
        )
    except Folder.DoesNotExist:
        raise Http404("No such folder.") from None
    if request.htmx and current_conversation(request) in deleted:
        return HttpResponseClientRedirect("/")  # the open conversation went with the folder
    return _changed(request, None)


@require_GET
def conversation_move_form(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    """The menu's "Move to folder…": the owner's folders to choose from."""
    try:
        conversation = conversation_get(owner=request.user, conversation_id=conversation_id)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None
    return render(
        request,
        "chat/frames/move_form.html",
        {"c": conversation, "folders": folders.folder_list(owner=request.user)},
    )


@require_POST
def conversation_move(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    """`folder`: a folder's id, or empty for none; or `new_folder`: a name, made and moved into."""
    fields = form_fields(request)
    if "folder" not in fields and "new_folder" not in fields:
        # A request that does not say where (a body unread, a field missing) moves nothing.
        return HttpResponseBadRequest(
            "folder or new_folder is needed.", content_type="text/plain; charset=utf-8"
        )
    try:
        moved = folders.conversation_move(
            owner=request.user,
            conversation_id=conversation_id,
            folder_id=fields.get("folder", ""),
            new_folder=fields.get("new_folder", ""),
        )
    except (Conversation.DoesNotExist, Folder.DoesNotExist):
        raise Http404("No such conversation or folder.") from None
    except ChatError as exc:
        return _refused(request, exc)
    if not request.htmx:
        return redirect("chat:conversation", conversation_id=moved.pk)
    return sidebar_lists(request, moved, open_folder=moved.folder)
