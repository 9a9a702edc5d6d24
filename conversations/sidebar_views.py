"""The sidebar's htmx fragments: its next page, the archived list, pin and archive, and
changes to the conversations selected.

A pin or an archive moves the conversation between groups, so each answers with the
whole list re-rendered (its first page), not the one item."""

import json
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from conversations import services
from conversations.bulk import conversations_bulk_change
from conversations.errors import ChatError
from conversations.models import Conversation, Folder
from conversations.selectors import conversation_get
from conversations.sidebar import Cursor, archived_list, folder_items, sidebar_page
from conversations.views import HtmxHttpRequest


def current_conversation(request: HttpRequest) -> str:
    """The conversation open in the page that asked (chat.js sends it), to mark it active."""
    return request.headers.get("X-Chat-Current", "")


def form_fields(request: HttpRequest) -> dict[str, Any]:
    """The form's fields (a repeated one as a list), or a script's JSON object ({} when the
    body is not one)."""
    if request.content_type != "application/json":
        return {name: values[0] if len(values) == 1 else values for name, values in request.POST.lists()}
    try:
        fields = json.loads(request.body)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        return {}
    return fields if isinstance(fields, dict) else {}


def sidebar_lists(
    request: HtmxHttpRequest,
    changed: Conversation | None = None,
    *,
    show_archived: bool = False,
    open_folder: Folder | None = None,
    list_error: str = "",
    new_folder_open: bool = False,
    status: int = 200,
) -> HttpResponse:
    """The whole list re-rendered, with the archived list or a folder open (the one just
    changed), and what a folder form refused."""
    return render(
        request,
        "chat/frames/sidebar.html",
        {
            "sidebar": sidebar_page(owner=request.user),
            "archived": archived_list(owner=request.user) if show_archived else None,
            "open_folder": open_folder,
            "open_items": folder_items(owner=request.user, folder=open_folder) if open_folder else None,
            "list_error": list_error,
            "new_folder_open": new_folder_open,
            "current": current_conversation(request),
            "changed": changed,
        },
        status=status,
    )


def _lists(request: HtmxHttpRequest, changed: Conversation, *, show_archived: bool) -> HttpResponse:
    if not request.htmx:
        return redirect("chat:conversation", conversation_id=changed.pk)
    return sidebar_lists(request, changed, show_archived=show_archived)


def _flag(request: HttpRequest, name: str) -> bool | None:
    """A yes/no field, "1" or "0"; None for anything else: a request that does not say
    what it wants (a body unread, a field missing) changes nothing."""
    value = request.POST.get(name)
    return value == "1" if value in {"0", "1"} else None


def _flag_set(
    request: HtmxHttpRequest, conversation_id: str, name: str, change: Callable[..., Conversation]
) -> HttpResponse:
    """`change` the owner's conversation by the yes/no field `name`, and show the list."""
    try:
        # Anyone else's is not found, whatever the request says.
        conversation_get(owner=request.user, conversation_id=conversation_id)
        value = _flag(request, name)
        if value is None:
            return HttpResponseBadRequest(f"{name} must be 1 or 0.", content_type="text/plain; charset=utf-8")
        changed = change(owner=request.user, conversation_id=conversation_id, **{name: value})
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None
    # A restore is made from the archived list: it stays open, with what is left in it.
    return _lists(request, changed, show_archived=name == "archived" and not value)


@require_GET
def conversation_list_more(request: HttpRequest) -> HttpResponse:
    """The page of the list after `before_at`/`before_id` (where the last page ended), when
    the list's end scrolls into view."""
    try:
        before = Cursor.parse(request.GET.get("before_at", ""), request.GET.get("before_id", ""))
    except ValueError:
        return HttpResponseBadRequest(
            "before_at and before_id must say where a page ended.", content_type="text/plain; charset=utf-8"
        )
    return render(
        request,
        "chat/frames/sidebar_more.html",
        {
            "sidebar": sidebar_page(owner=request.user, before=before),
            "current": current_conversation(request),
        },
    )


@require_GET
def conversation_list_archived(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "chat/frames/sidebar_items.html",
        {"items": archived_list(owner=request.user), "current": current_conversation(request)},
    )


@require_POST
def conversation_pin(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    """`pinned`: 1 pins, 0 unpins."""
    return _flag_set(request, conversation_id, "pinned", services.conversation_pin)


@require_POST
def conversation_archive(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    """`archived`: 1 archives, 0 restores."""
    return _flag_set(request, conversation_id, "archived", services.conversation_archive)


@require_POST
def conversations_bulk(request: HtmxHttpRequest) -> HttpResponse:
    """The selected conversations (`ids`, repeated) archived, deleted or moved (`action`),
    the move into `folder` (a folder's id, or empty for none)."""
    fields = form_fields(request)
    ids = fields.get("ids")
    try:
        deleted = conversations_bulk_change(
            owner=request.user, ids=ids, action=fields.get("action"), folder_id=fields.get("folder")
        )
    except (Conversation.DoesNotExist, Folder.DoesNotExist):
        raise Http404("No such conversation or folder.") from None
    except ChatError as exc:
        if not request.htmx:
            return HttpResponseBadRequest(exc.message, content_type="text/plain; charset=utf-8")
        return sidebar_lists(request, list_error=exc.message, status=422)
    if not request.htmx:
        return redirect("chat:home")
    current = current_conversation(request)
    if current in deleted:
        return HttpResponseClientRedirect("/")  # the open conversation was among them
    # The open conversation archived: its heading says so (as after an archive from its menu).
    chosen = ids if isinstance(ids, list) else [ids]
    changed = conversation_get(owner=request.user, conversation_id=current) if current in chosen else None
    return sidebar_lists(request, changed)
