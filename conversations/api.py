"""The FastAPI demo's JSON + SSE API, on its paths and with its event shapes.

Unlike the demo, the caller is the authenticated user (session cookie or
`Authorization: Bearer <token>`), never a `user_id` parameter, and every call goes
through the same services as the chat page and `manage.py chat`.
"""

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial, wraps
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from conversations import replylog, services
from conversations.models import Conversation, Message
from conversations.selectors import conversation_get, conversation_summaries, message_list, reply_settled
from roles.selectors import role_list_active

logger = logging.getLogger(__name__)

Handler = Callable[[HttpRequest, AbstractBaseUser, dict[str, Any]], Awaitable[HttpResponseBase]]

PREVIEW_CHARS = 120
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
STATUS_FOR_CODE = {"message_too_long": 413, "reply_in_progress": 409, "rate_limited": 429}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="chatsite"'
    return response


def ok(data: dict[str, Any], status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})


async def _authenticate(request: HttpRequest) -> tuple[AbstractBaseUser | None, bool]:
    """The caller and whether a token (not a cookie) identified them."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _space, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            return None, True
        user = await database_sync_to_async(services.api_token_authenticate)(raw=raw.strip())
        return user, True
    session_user = await request.auser()
    return (session_user if session_user.is_authenticated else None), False


def _csrf_rejected(request: HttpRequest) -> bool:
    # The views are csrf_exempt because token calls need no CSRF token; cookie calls
    # get the same check Django's middleware would make.
    check = CsrfViewMiddleware(lambda _request: HttpResponse())
    check.process_request(request)
    return check.process_view(request, None, (), {}) is not None  # type: ignore[arg-type]


def _params(request: HttpRequest) -> dict[str, Any]:
    """Query string, then form or JSON body: old clients send either."""
    params: dict[str, Any] = request.GET.dict()
    if request.method in UNSAFE_METHODS:
        if request.content_type == "application/json":
            body = request.body
            if body.strip():
                try:
                    data = json.loads(body)
                except ValueError:
                    raise ApiError(400, "invalid_json", _("The request body is not valid JSON.")) from None
                if not isinstance(data, dict):
                    raise ApiError(400, "invalid_json", _("The request body must be a JSON object."))
                params.update(data)
        else:
            params.update(request.POST.dict())
    return params


def api_view(*methods: str) -> Callable[[Handler], Callable[..., Any]]:
    """Method check, authentication, CSRF for cookies, legacy user_id, and JSON errors."""

    def decorate(handler: Handler) -> Callable[..., Any]:
        @login_not_required
        @csrf_exempt
        @wraps(handler)
        async def view(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                response = error_response(
                    405, "method_not_allowed", _("Use %(methods)s.") % {"methods": ", ".join(methods)}
                )
                response["Allow"] = ", ".join(methods)
                return response
            user, by_token = await _authenticate(request)
            if user is None:
                return error_response(401, "unauthenticated", _("Sign in or send a valid API token."))
            if not by_token and request.headers.get("Sec-Fetch-Site") == "cross-site":
                # A cookie call from another site's page: GET /chat/stream starts a reply,
                # so even a "safe" method must not run on another site's say-so.
                return error_response(403, "cross_site", _("Cross-site requests are not accepted."))
            if not by_token and request.method in UNSAFE_METHODS and _csrf_rejected(request):
                return error_response(
                    403, "csrf_failed", _("CSRF check failed: send the X-CSRFToken header.")
                )
            try:
                params = _params(request)
                # Old clients send user_id: accepted only when it names the caller.
                if "user_id" in params and str(params["user_id"]) != str(user.pk):
                    raise Conversation.DoesNotExist
                return await handler(request, user, {**params, **kwargs})
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message)
            except services.ChatError as exc:
                response = error_response(STATUS_FOR_CODE.get(exc.code, 400), exc.code, exc.message)
                if exc.retry_after is not None:
                    response["Retry-After"] = str(exc.retry_after)
                return response
            except Conversation.DoesNotExist:
                return error_response(404, "not_found", _("No such conversation."))
            except RequestDataTooBig:
                return error_response(413, "too_large", _("The request is too large."))

        return view

    return decorate


def _required(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or str(value).strip() == "":
        raise ApiError(400, "missing_parameter", _("%(name)s is required.") % {"name": name})
    return str(value)


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.pk,
        "author": message.author,
        "role": message.author,  # the demo's name for it
        "content": message.content,
        "status": message.status,
        "error": message.error,
        "created_at": message.created_at.isoformat(),
        "updated_at": message.updated_at.isoformat(),
    }


@api_view("POST")
async def chat_start(
    request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]
) -> HttpResponseBase:
    conversation = await database_sync_to_async(services.conversation_create)(
        owner=user, role_slug=params.get("role") or None, title=str(params.get("title") or "")
    )
    return ok(
        {
            "session_id": str(conversation.pk),
            "role": conversation.role.slug,
            "title": conversation.title,
            "created_at": conversation.created_at.isoformat(),
        },
        status=201,
    )


def _sse(event_id: int, data: dict[str, Any]) -> str:
    return f"id: {event_id}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _reply_events(reply_id: int, session_id: str) -> AsyncIterator[str]:
    async for event in replylog.follow(reply_id=reply_id, settled=partial(reply_settled, reply_id)):
        if event.kind == "delta":
            yield _sse(event.seq, {"type": "chunk", "content": event.text})
        elif event.status in {Message.Status.ERROR, Message.Status.INTERRUPTED}:
            yield _sse(event.seq, {"type": "error", "content": event.error, "status": event.status})
        else:
            yield _sse(
                event.seq,
                {"type": "end", "status": event.status, "session_id": session_id, "message_id": reply_id},
            )


@api_view("GET", "POST")
async def chat_stream(
    request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]
) -> HttpResponseBase:
    session_id = _required(params, "session_id")
    exchange = await services.message_send(
        owner=user,
        conversation_id=session_id,
        content=params.get("message", ""),
        role_slug=params.get("role") or None,
    )
    response = StreamingHttpResponse(
        _reply_events(exchange.reply.pk, str(exchange.conversation.pk)),
        content_type="text/event-stream; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


@api_view("GET")
async def chat_history(
    request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]
) -> HttpResponseBase:
    conversation = await database_sync_to_async(conversation_get)(
        owner=user, conversation_id=_required(params, "session_id")
    )
    messages = await database_sync_to_async(message_list)(conversation=conversation)
    return ok(
        {
            "session_id": str(conversation.pk),
            "title": conversation.title,
            "role": conversation.role.slug,
            "messages": [_message_json(message) for message in messages],
        }
    )


@api_view("GET")
async def chat_sessions(
    request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]
) -> HttpResponseBase:
    summaries = [c async for c in conversation_summaries(owner=user)]
    return ok(
        {
            "sessions": [
                {
                    "session_id": str(c.pk),
                    "title": c.title,
                    "role": c.role.slug,
                    "last_message": (c.last_message or "")[:PREVIEW_CHARS],  # type: ignore[attr-defined]
                    "created_at": c.created_at.isoformat(),
                    "updated_at": c.updated_at.isoformat(),
                }
                for c in summaries
            ]
        }
    )


@api_view("GET")
async def roles(request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]) -> HttpResponseBase:
    active = await database_sync_to_async(role_list_active)()
    return ok({"roles": [{"slug": r.slug, "name": r.name, "description": r.description} for r in active]})


@api_view("DELETE")
async def chat_session(
    request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]
) -> HttpResponseBase:
    session_id = str(params["session_id"])
    await database_sync_to_async(services.conversation_delete)(owner=user, conversation_id=session_id)
    return ok({"deleted": True, "session_id": session_id})


@login_not_required
@csrf_exempt
def not_found(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return error_response(404, "not_found", _("No such API endpoint."))
