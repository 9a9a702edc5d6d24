"""The FastAPI demo's JSON + SSE API, on its paths and with its event shapes.

Unlike the demo, the caller is the authenticated user (session cookie or
`Authorization: Bearer <token>`), never a `user_id` parameter, and every call goes
through the same services as the chat page and `manage.py chat`.
"""

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from conversations import hub, images, sending, services, tokens
from conversations.db import in_thread
from conversations.models import Attachment, Conversation, Feedback, Message
from conversations.reasoning import Splitter
from conversations.selectors import conversation_get, conversation_summaries, message_list
from providers.selectors import ModelChoice, ModelPick, model_choices
from roles.selectors import role_list_active

logger = logging.getLogger(__name__)

Handler = Callable[[HttpRequest, AbstractBaseUser, dict[str, Any]], Awaitable[HttpResponseBase]]

PREVIEW_CHARS = 120
# GET /chat/sessions pages: 50 conversations unless asked, at most 200.
SESSIONS_PAGE = 50
SESSIONS_MAX_LIMIT = 200
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
STATUS_FOR_CODE = {
    "message_too_long": 413,
    "image_too_large": 413,
    "reply_in_progress": 409,
    "rate_limited": 429,
    # Overload and Redis trouble: the client should come back after Retry-After.
    "busy": 503,
    "unavailable": 503,
}


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
        user = await in_thread(tokens.api_token_authenticate)(raw=raw.strip())
        return user, True
    session_user = await request.auser()
    return (session_user if session_user.is_authenticated else None), False


def _csrf_rejected(request: HttpRequest) -> bool:
    # The views are csrf_exempt because token calls need no CSRF token; cookie calls
    # get the same check Django's middleware would make.
    check = CsrfViewMiddleware(lambda _request: HttpResponse())
    check.process_request(request)
    return check.process_view(request, None, (), {}) is not None  # type: ignore[arg-type]


# Lone UTF-16 surrogates: not Unicode text (no UTF-8 encodes them), though JSON's
# "\ud800" escapes can spell them. Nothing could store or send them back.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _pairs(encoded: str | bytes) -> dict[str, str]:
    """A query string or form body, strictly: text that is not UTF-8 is refused, not replaced."""
    try:
        pairs = parse_qsl(
            encoded.decode() if isinstance(encoded, bytes) else encoded,
            keep_blank_values=True,
            errors="strict",
            max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
        )
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_parameter", _("The parameters are not valid UTF-8.")) from None
    except ValueError:  # more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS
        raise ApiError(400, "too_many_fields", _("The request has too many parameters.")) from None
    return dict(pairs)  # a repeated name: the last one counts, as with QueryDict.dict()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        # Strict UTF-8 first: json.loads() would let encoded surrogates through.
        data = json.loads(body.decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "invalid_json", _("The request body is not valid JSON.")) from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", _("The request body must be a JSON object."))
    # Walk every key and value, without recursion: parsed JSON can be deep.
    pending: list[Any] = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and LONE_SURROGATE.search(value):
            raise ApiError(400, "invalid_json", _("The request body holds text that is not valid Unicode."))
    return data


def _params(request: HttpRequest) -> dict[str, Any]:
    """Query string, then form or JSON body: old clients send either."""
    params: dict[str, Any] = _pairs(request.META.get("QUERY_STRING", ""))
    if request.method in UNSAFE_METHODS:
        if request.content_type == "application/json":
            if request.body.strip():
                params.update(_json_object(request.body))
        elif request.content_type == "application/x-www-form-urlencoded":
            params.update(_pairs(request.body))
        else:
            params.update(request.POST.dict())
    return params


def _text(params: dict[str, Any], name: str) -> str:
    """A text parameter ("" when absent or null); any other type is refused.

    What text may hold (no NUL in a message or title, ...) is the services' to say.
    """
    value = params.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(400, "invalid_parameter", _("%(name)s must be text.") % {"name": name})
    return value


def _caller_named(params: dict[str, Any], user: AbstractBaseUser) -> bool:
    """Old clients send user_id (text, or a JSON number): accepted only when it names the caller."""
    if "user_id" not in params:
        return True
    value = params["user_id"]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) == str(user.pk)
    return _text(params, "user_id") == str(user.pk)


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
            try:
                # The CSRF check may read a form body: its errors are answered below too.
                if not by_token and request.method in UNSAFE_METHODS and _csrf_rejected(request):
                    return error_response(
                        403, "csrf_failed", _("CSRF check failed: send the X-CSRFToken header.")
                    )
                params = _params(request)
                if not _caller_named(params, user):
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
            except (TooManyFieldsSent, TooManyFilesSent):
                return error_response(400, "too_many_fields", _("The request has too many parameters."))
            except MultiPartParserError:
                return error_response(400, "invalid_body", _("The request body could not be read."))

        return view

    return decorate


def _required(params: dict[str, Any], name: str) -> str:
    value = _text(params, name)
    if value.strip() == "":
        raise ApiError(400, "missing_parameter", _("%(name)s is required.") % {"name": name})
    return value


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.pk,
        "author": message.author,
        "role": message.author,  # the demo's name for it
        "content": message.content,
        # The model's thinking before its answer ("" when it showed none), and how long it took.
        "reasoning": message.reasoning,
        "reasoning_ms": message.reasoning_ms,
        "status": message.status,
        "error": message.error,
        "created_at": message.created_at.isoformat(),
        "updated_at": message.updated_at.isoformat(),
        # What a reply cost: the provider's token counts (null when it reported none) and
        # how long its first text took. A user's message has none.
        "usage": {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
            "first_token_ms": message.first_token_ms,
        }
        if message.author == Message.Author.ASSISTANT
        else None,
        "feedback": _feedback_json(message),
        # The images sent with a message, each served to its owner only.
        "images": [images.attachment_json(a) for a in message.attachments.all()],
    }


def _feedback_json(message: Message) -> dict[str, str] | None:
    given = getattr(message, "feedback", None)  # none yet: the reverse one-to-one raises
    if given is None:
        return None
    return {"rating": "up" if given.rating == Feedback.Rating.UP else "down", "comment": given.comment}


@api_view("POST")
async def chat_start(
    request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]
) -> HttpResponseBase:
    conversation = await database_sync_to_async(services.conversation_create)(
        owner=user, role_slug=_text(params, "role") or None, title=_text(params, "title")
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
    # The model's thinking, as the demo sends it: `reasoning` events before the answer's `chunk`s.
    splitter = Splitter()
    async for event in hub.follow(reply_id=reply_id):
        if event.kind == "delta":
            for piece in splitter.feed(event.text):
                if piece.kind == "reasoning":
                    yield _sse(event.seq, {"type": "reasoning", "content": piece.text})
                elif piece.kind == "answer":
                    yield _sse(event.seq, {"type": "chunk", "content": piece.text})
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
    image = await database_sync_to_async(_image_attach)(request, params, user)
    try:
        exchange = await sending.message_send(
            owner=user,
            conversation_id=session_id,
            content=_text(params, "message"),
            role_slug=_text(params, "role") or None,
            pick=await database_sync_to_async(_model_pick)(params),
            attachments=[image.pk] if image else [],
        )
    except BaseException:
        if image is not None:  # the message was refused: its image goes too
            await image.adelete()
        raise
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


def _limit(params: dict[str, Any]) -> int:
    """`limit`: a whole number from 1 to SESSIONS_MAX_LIMIT, as text or a JSON number."""
    value = params.get("limit")
    if value is None or value == "":
        return SESSIONS_PAGE
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= SESSIONS_MAX_LIMIT:
        raise ApiError(
            400,
            "invalid_parameter",
            _("limit must be a whole number from 1 to %(most)s.") % {"most": SESSIONS_MAX_LIMIT},
        )
    return value


@api_view("GET")
async def chat_sessions(
    request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]
) -> HttpResponseBase:
    """The caller's conversations, newest first, a page at a time: `limit` (default 50) and
    `before`, the last session_id of the page before (`next_before`)."""
    limit = _limit(params)
    before = None
    if _text(params, "before"):
        before = await database_sync_to_async(conversation_get)(owner=user, conversation_id=params["before"])
    page = [c async for c in conversation_summaries(owner=user, limit=limit + 1, before=before)]
    summaries, more = page[:limit], len(page) > limit
    return ok(
        {
            "has_more": more,
            "next_before": str(summaries[-1].pk) if more else None,
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
            ],
        }
    )


def _image_attach(request: HttpRequest, params: dict[str, Any], user: AbstractBaseUser) -> Attachment | None:
    """The image sent with a message: the demo's `image_data` (base64) and `image_type`,
    or a multipart upload in `image` (or `file`). Raises ChatError for one that is not
    an image Chatsite reads, or too large (413)."""
    upload = request.FILES.get("image") or request.FILES.get("file") if request.FILES else None
    if upload is not None:
        if upload.size is not None and upload.size > settings.CHAT_IMAGE_MAX_BYTES:
            raise images.image_too_large()
        return images.attachment_create(owner=user, data=upload.read())
    data = _text(params, "image_data").strip()
    if not data:
        if _text(params, "image_type"):
            raise services.ChatError(_("image_type was sent without image_data."), code="invalid_image")
        return None
    return images.attachment_base64_create(
        owner=user, image_data=data, image_type=_text(params, "image_type")
    )


def _model_pick(params: dict[str, Any]) -> ModelPick | None:
    """The demo's `provider` and `model` fields (both optional). A model named without
    its provider is looked for among every provider's models."""
    provider, model = _text(params, "provider").strip(), _text(params, "model").strip()
    if not provider and not model:
        return None
    if not provider:
        provider = next((c.provider for c in model_choices() if c.model == model), "")
    return ModelPick(provider=provider, model=model)


@api_view("GET")
async def providers(request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]) -> HttpResponseBase:
    """The providers and models users may pick, in the demo's later shape: never a key or a URL."""
    choices = await database_sync_to_async(model_choices)()
    grouped: dict[str, list[ModelChoice]] = {}
    for choice in choices:
        grouped.setdefault(choice.provider, []).append(choice)
    default = choices[0].provider if choices else None
    return ok(
        {
            "providers": [
                {
                    "id": name,
                    "name": models[0].provider_label,
                    "models": [m.model for m in models],
                    "default_model": models[0].model,
                    "model_info": [
                        {
                            "id": m.model,
                            "name": m.label,
                            "vision": m.vision,
                            "reasoning": m.reasoning,
                            "context_window": m.context_window,
                        }
                        for m in models
                    ],
                    "is_default": name == default,
                }
                for name, models in grouped.items()
            ],
            "default_provider": default,
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
