"""The chat pages and their htmx fragments. Thin: each view calls a selector or service."""

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.models import User
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails
from redis.exceptions import RedisError

from conversations import limits, replylog, services
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
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if not settings.CHATSITE_SIGNUP_ENABLED:
        raise Http404("Sign-up is turned off.")
    if request.user.is_authenticated:
        return redirect("chat:home")
    form: UserCreationForm[User] = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat:home")
    return render(request, "registration/signup.html", {"form": form})


class SignInView(LoginView):
    """Django's sign-in, with attempts limited per client IP and per account."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            limits.signin_attempt(ip=_client_ip(request), username=request.POST.get("username", ""))
        except limits.LimitExceeded as exc:
            response = self.render_to_response(self.get_context_data(throttled=exc.message))
            response.status_code = 429
            response["Retry-After"] = str(exc.retry_after)
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        limits.signin_succeeded(ip=_client_ip(self.request), username=form.get_user().get_username())
        return super().form_valid(form)


def _client_ip(request: HttpRequest) -> str:
    # Behind a reverse proxy, run daphne with --proxy-headers so this is the client's address.
    return str(request.META.get("REMOTE_ADDR") or "unknown")
