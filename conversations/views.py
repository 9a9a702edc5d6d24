"""The chat pages and their htmx fragments. Thin: each view calls a selector or service."""

import hmac
from dataclasses import asdict

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails
from redis.exceptions import RedisError

from conversations import replylog, services
from conversations.health import health_check
from conversations.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from conversations.metrics import metrics_text
from conversations.models import Conversation, Message
from conversations.selectors import (
    conversation_get,
    conversation_list,
    message_list,
    message_streaming,
    turn_versions,
)
from roles.selectors import role_list_active


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _chat_page(request: HttpRequest, conversation: Conversation | None) -> HttpResponse:
    messages = message_list(conversation=conversation) if conversation else []
    streaming = message_streaming(conversation=conversation) if conversation else None
    # A reply still being written shows its text so far; the socket continues it.
    streaming_text = _text_so_far(streaming) if streaming else ""
    return render(
        request,
        "chat/page.html",
        {
            "conversation": conversation,
            "conversations": conversation_list(owner=request.user),
            "messages": messages,
            "streaming": streaming,
            "streaming_text": streaming_text,
            "roles": role_list_active(),
            "versions": turn_versions(conversation=conversation) if conversation else None,
        },
    )


def _text_so_far(reply: Message) -> str:
    try:
        return replylog.snapshot(reply_id=reply.pk).text or reply.content
    except RedisError:  # Redis is down: the last checkpoint
        return reply.content


def _get_owned(request: HttpRequest, conversation_id: object) -> Conversation:
    try:
        return conversation_get(owner=request.user, conversation_id=conversation_id)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return _chat_page(request, None)


@require_GET
def conversation_detail(request: HttpRequest, conversation_id: str) -> HttpResponse:
    return _chat_page(request, _get_owned(request, conversation_id))


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


@login_not_required
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for staff or a scraper with `Authorization: Bearer METRICS_TOKEN`."""
    if not _may_read_metrics(request):
        status = 403 if request.user.is_authenticated or "Authorization" in request.headers else 401
        response = HttpResponse(status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="chatsite-metrics"'
        return response
    response = HttpResponse(metrics_text(), content_type=METRICS_CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response


def _may_read_metrics(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _space, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    return bool(request.user.is_authenticated and request.user.is_staff)


@login_not_required
@require_GET
async def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers: 200 while this process can serve, 503 (with Retry-After) when not."""
    health = await health_check()
    checks = {"database": health.database, "redis": health.redis, "provider": health.provider}
    response = JsonResponse(
        {"status": health.status, "checks": {name: asdict(check) for name, check in checks.items()}},
        status=200 if health.serving else 503,
    )
    if not health.serving:
        response["Retry-After"] = str(settings.CHAT_RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response
