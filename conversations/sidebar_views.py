"""The sidebar's htmx fragments: its next page, the archived list, pin and archive.

A pin or an archive moves the conversation between groups, so each answers with the
whole list re-rendered (its first page), not the one item."""

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from conversations import services
from conversations.models import Conversation
from conversations.selectors import conversation_get
from conversations.sidebar import Cursor, archived_list, sidebar_page
from conversations.views import HtmxHttpRequest


def _current(request: HttpRequest) -> str:
    """The conversation open in the page that asked (chat.js sends it), to mark it active."""
    return request.headers.get("X-Chat-Current", "")


def _lists(request: HtmxHttpRequest, changed: Conversation, *, show_archived: bool) -> HttpResponse:
    if not request.htmx:
        return redirect("chat:conversation", conversation_id=changed.pk)
    return render(
        request,
        "chat/frames/sidebar.html",
        {
            "sidebar": sidebar_page(owner=request.user),
            "archived": archived_list(owner=request.user) if show_archived else None,
            "current": _current(request),
            "changed": changed,
        },
    )


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
        {"sidebar": sidebar_page(owner=request.user, before=before), "current": _current(request)},
    )


@require_GET
def conversation_list_archived(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "chat/frames/sidebar_archived.html",
        {"archived": archived_list(owner=request.user), "current": _current(request)},
    )


@require_POST
def conversation_pin(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    """`pinned`: 1 pins, 0 unpins."""
    return _flag_set(request, conversation_id, "pinned", services.conversation_pin)


@require_POST
def conversation_archive(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    """`archived`: 1 archives, 0 restores."""
    return _flag_set(request, conversation_id, "archived", services.conversation_archive)
