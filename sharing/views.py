"""The owner's share page for a conversation, the link everyone can open, and "continue"."""

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from conversations.errors import ChatError
from conversations.limits import LimitExceeded
from conversations.models import Conversation
from conversations.selectors import conversation_get
from sharing import services
from sharing.models import SharedLink
from sharing.selectors import share_get, share_get_for_conversation


def _manage_page(
    request: HttpRequest, conversation: Conversation, *, error: str = "", status: int = 200
) -> HttpResponse:
    link = share_get_for_conversation(conversation=conversation)
    context = {
        "conversation": conversation,
        "link": link,
        "link_url": request.build_absolute_uri(link.get_absolute_url()) if link else "",
        "author_name": services.share_author_name(request.user),
        "error": error,
        "notices": list(messages.get_messages(request)),
    }
    return render(request, "sharing/manage.html", context, status=status)


@require_http_methods(["GET", "POST"])
def share_manage(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """The owner's page for sharing the conversation; a POST shares it as it is now."""
    try:
        conversation = conversation_get(owner=request.user, conversation_id=conversation_id)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None
    if request.method != "POST":
        return _manage_page(request, conversation)
    if request.POST.get("share") != "1":
        # A request that does not say it shares (a body unread, a field missing) shares nothing.
        return _manage_page(request, conversation, error=_("Nothing was shared."), status=400)
    try:
        show_name = request.POST.get("show_name") == "1"
        _link, created = services.share_publish(
            owner=request.user, conversation_id=conversation.pk, show_name=show_name
        )
    except Conversation.DoesNotExist:  # deleted meanwhile
        raise Http404("No such conversation.") from None
    except ChatError as exc:
        return _manage_page(request, conversation, error=exc.message, status=400)
    if created:
        messages.success(request, _("Anyone with the link can read it."))
    else:
        messages.success(request, _("The link now shows the conversation as it is."))
    return redirect("sharing:manage", conversation_id=conversation.pk)


@require_POST
def share_remove(request: HttpRequest, share_id: int) -> HttpResponse:
    """Delete one of the caller's links; `back` = "settings" returns to the settings page."""
    try:
        conversation_id = services.share_delete(owner=request.user, share_id=share_id)
    except SharedLink.DoesNotExist:
        raise Http404("No such link.") from None
    messages.success(request, _("The link was deleted: it no longer opens."))
    if request.POST.get("back") == "settings":
        return redirect("account_settings")
    return redirect("sharing:manage", conversation_id=conversation_id)


@login_not_required
@require_GET
def share_view(request: HttpRequest, token: str) -> HttpResponse:
    """The shared copy, for anyone with the link."""
    try:
        link = share_get(token=token)
    except SharedLink.DoesNotExist:
        raise Http404("No such link.") from None
    return _shared_page(request, link)


def _shared_page(
    request: HttpRequest, link: SharedLink, *, error: str = "", status: int = 200
) -> HttpResponse:
    response = render(request, "sharing/page.html", {"link": link, "error": error}, status=status)
    # Not for search engines; and the link is the key, so no other site it links to learns
    # it. (Not "no-referrer": Chromium then sends "Origin: null" with the page's own form,
    # and the CSRF check refuses "Continue".)
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "same-origin"
    response["Cache-Control"] = "private, no-store"
    return response


@require_POST
def share_continue(request: HttpRequest, token: str) -> HttpResponse:
    """Copy the shared conversation into the caller's own, and open it."""
    try:
        conversation = services.share_continue(viewer=request.user, token=token)
    except SharedLink.DoesNotExist:
        raise Http404("No such link.") from None
    except LimitExceeded as exc:
        return _continue_refused(request, token, exc)
    except ChatError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    return redirect("chat:conversation", conversation_id=conversation.pk)


def _continue_refused(request: HttpRequest, token: str, refused: LimitExceeded) -> HttpResponse:
    """The shared page again, saying when the viewer may continue."""
    try:
        link = share_get(token=token)
    except SharedLink.DoesNotExist:  # deleted meanwhile
        raise Http404("No such link.") from None
    response = _shared_page(request, link, error=refused.message, status=429)
    response["Retry-After"] = str(refused.retry_after)
    return response
