"""The chat pages and their htmx fragments. Thin: each view calls a selector or service."""

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails
from redis.exceptions import RedisError

from conversations import export, feedback, replylog, search, services
from conversations.models import Conversation, Message
from conversations.prompts import prompt_list
from conversations.reasoning import reasoning_join
from conversations.selectors import (
    conversation_get,
    conversation_get_for_export,
    conversation_list_for_export,
    message_page,
    message_streaming,
)
from conversations.sent import reply_sent_get
from conversations.sidebar import sidebar_page
from providers.selectors import conversation_model_value, model_groups
from roles.selectors import role_list_active


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _chat_page(
    request: HttpRequest, conversation: Conversation | None, found: dict[str, object] | None = None
) -> HttpResponse:
    # The latest messages; earlier ones load as the reader scrolls up (or as chat.js looks
    # for the message a search result opens at).
    page = message_page(conversation=conversation) if conversation else None
    messages = page.messages if page else []
    streaming = message_streaming(conversation=conversation) if conversation else None
    # A reply still being written shows its text so far; the socket continues it.
    streaming_text = _text_so_far(streaming) if streaming else ""
    return render(
        request,
        "chat/page.html",
        {
            "conversation": conversation,
            "sidebar": sidebar_page(owner=request.user),
            "messages": messages,
            "older_than": page.older_than if page else None,
            "summary": page.summary if page else None,
            "streaming": streaming,
            "streaming_text": streaming_text,
            "roles": role_list_active(),
            "model_groups": model_groups(),
            "model_current": conversation_model_value(conversation) if conversation else "",
            "branches": page.branches if page else {},
            "found": found or _search_results(request, ""),
            "prompts": prompt_list(owner=request.user),
        },
    )


def _message_id(value: str | None) -> int | None:
    # isdigit() alone is true of "²", which int() refuses.
    return int(value) if value and value.isascii() and value.isdigit() and len(value) < 19 else None


@require_GET
def conversation_messages_older(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """The messages before `before` (the first one shown), when the reader scrolls up to it."""
    conversation = _get_owned(request, conversation_id)
    before = _message_id(request.GET.get("before"))
    if before is None:
        return HttpResponseBadRequest(
            "before must be a message id.", content_type="text/plain; charset=utf-8"
        )
    page = message_page(conversation=conversation, before=before)
    return render(
        request,
        "chat/frames/older_messages.html",
        {
            "conversation": conversation,
            "messages": page.messages,
            "older_than": page.older_than,
            "summary": page.summary,
            "branches": page.branches,
        },
    )


def _search_results(request: HttpRequest, query: str) -> dict[str, object]:
    return {
        "query": query,
        "titles": search.conversation_title_search(owner=request.user, query=query),
        "hits": search.message_search(owner=request.user, query=query, limit=SEARCH_HITS),
    }


def _text_so_far(reply: Message) -> str:
    saved = reasoning_join(reply.reasoning, reply.content)  # the last checkpoint
    try:
        return replylog.snapshot(reply_id=reply.pk).text or saved
    except RedisError:  # Redis is down
        return saved


def _get_owned(request: HttpRequest, conversation_id: object) -> Conversation:
    try:
        return conversation_get(owner=request.user, conversation_id=conversation_id)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return _chat_page(request, None)


@require_GET
def local_model_note(request: HttpRequest) -> HttpResponse:
    """The page's note on the built-in model, polled while ./run prepares it."""
    return render(request, "chat/frames/local_model_note.html")


@require_GET
def conversation_detail(request: HttpRequest, conversation_id: str) -> HttpResponse:
    return _chat_page(request, _get_owned(request, conversation_id))


SEARCH_HITS = 30


@require_GET
def conversation_search(request: HtmxHttpRequest) -> HttpResponse:
    """The sidebar's search: conversations by title and messages holding the words of `q`
    (as a whole page with the results in its sidebar, without htmx)."""
    found = _search_results(request, request.GET.get("q", "")[: search.QUERY_MAX_CHARS].strip())
    if request.htmx:
        response = render(request, "chat/frames/search_results.html", {"found": found})
    else:
        response = _chat_page(request, None, found)
    patch_vary_headers(response, ["HX-Request"])  # a fragment or a page, by that header
    return response


@require_POST
def conversation_rename(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    try:
        conversation = services.conversation_rename(
            owner=request.user, conversation_id=conversation_id, title=request.POST.get("title", "")
        )
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None
    except services.ChatError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    if not request.htmx:
        return redirect("chat:conversation", conversation_id=conversation.pk)
    active = request.POST.get("active") == str(conversation.pk)
    return render(request, "chat/frames/sidebar_item.html", {"c": conversation, "active": active})


@require_http_methods(["POST", "DELETE"])
def conversation_delete(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    try:
        services.conversation_delete(owner=request.user, conversation_id=conversation_id)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None
    if not request.htmx:
        return redirect("chat:home")
    if request.headers.get("X-Chat-Current") == str(conversation_id):
        return HttpResponseClientRedirect("/")
    return HttpResponse("")  # the sidebar item swaps itself out


@require_GET
def reply_sent(request: HttpRequest, reply_id: int) -> HttpResponse:
    """What the caller's reply was written from: the messages its request held."""
    try:
        found = reply_sent_get(owner=request.user, reply_id=reply_id)
    except Message.DoesNotExist:
        raise Http404("No such reply.") from None
    return render(request, "chat/frames/reply_sent.html", {"sent": found})


@require_http_methods(["GET", "POST"])
def conversation_note(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    """The note for this conversation (sent with each of its replies): its form, and
    saving it."""
    conversation = _get_owned(request, conversation_id)
    status, error, saved = 200, "", False
    if request.method == "POST":
        if "note" not in request.POST:  # a body unread, a field missing: nothing is changed
            return HttpResponseBadRequest("note is needed.", content_type="text/plain; charset=utf-8")
        try:
            conversation = services.conversation_note_set(
                owner=request.user, conversation_id=conversation.pk, text=request.POST["note"]
            )
            saved = True
        except services.ChatError as exc:
            status, error = 422, exc.message
    return render(
        request,
        "chat/frames/note_form.html",
        {"c": conversation, "error": error, "saved": saved},
        status=status,
    )


EXPORT_TYPES = {"md": "text/markdown; charset=utf-8", "json": "application/json; charset=utf-8"}


@require_GET
def conversation_export(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """One conversation as a file to download: `?format=md` (the default) or `json`."""
    fmt = request.GET.get("format", "md")
    if fmt not in EXPORT_TYPES:
        return HttpResponseBadRequest("format must be md or json.", content_type="text/plain; charset=utf-8")
    try:
        conversation = conversation_get_for_export(owner=request.user, conversation_id=conversation_id)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None
    response = HttpResponse(export.as_text(conversation, fmt), content_type=EXPORT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{export.file_name(conversation, fmt)}"'
    return response


@require_GET
def conversations_export(request: HttpRequest) -> HttpResponse:
    """All of the caller's conversations, as JSON and Markdown files in one zip."""
    archive = export.as_zip(conversation_list_for_export(owner=request.user))
    response = HttpResponse(archive, content_type="application/zip")
    response["Content-Disposition"] = 'attachment; filename="chatsite-conversations.zip"'
    return response


@require_POST
def reply_feedback(request: HttpRequest, reply_id: int) -> HttpResponse:
    """Thumbs up or down (`rating`: up, down, or "" to take it back) and a `comment`, on
    one of the caller's replies; answers with the reply's feedback controls."""
    try:
        feedback.reply_feedback_set(
            owner=request.user,
            reply_id=reply_id,
            rating=request.POST.get("rating", ""),
            comment=request.POST.get("comment", ""),
        )
    except Message.DoesNotExist:
        raise Http404("No such reply.") from None
    except services.ChatError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    reply = Message.objects.select_related("feedback").get(pk=reply_id)
    return render(request, "chat/frames/feedback.html", {"m": reply})
