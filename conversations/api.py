"""The FastAPI demo's JSON + SSE API, on its paths and with its event shapes.

Unlike the demo, the caller is the authenticated user (session cookie or
`Authorization: Bearer <token>`), never a `user_id` parameter, and every call goes
through the same services as the chat page and `manage.py chat`.
"""

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from conversations import hub, images, sending, services
from conversations.api_base import (
    api_view,
    error_response,
    ok,
    param_flag,
    param_limit,
    param_required,
    param_text,
)
from conversations.db import in_thread, in_write_thread
from conversations.models import Attachment, Feedback, Message
from conversations.reasoning import Splitter
from conversations.search_api import param_query
from conversations.selectors import conversation_get, conversation_summaries, message_list, message_tree
from providers.selectors import ModelChoice, ModelPick, model_choices
from roles.selectors import role_list_active

logger = logging.getLogger(__name__)

PREVIEW_CHARS = 120
# GET /chat/sessions pages: 50 conversations unless asked, at most 200.
SESSIONS_PAGE = 50
SESSIONS_MAX_LIMIT = 200


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.pk,
        # The message it follows (a reply its question): null for the first question.
        "parent_id": message.parent_id,
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
    conversation = await in_write_thread(services.conversation_create)(
        owner=user, role_slug=param_text(params, "role") or None, title=param_text(params, "title")
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
    session_id = param_required(params, "session_id")
    # No thread for what was not sent: a hop to one is a thread started for the request.
    image = (
        await database_sync_to_async(_image_attach)(request, params, user)
        if _image_sent(request, params)
        else None
    )
    try:
        exchange = await sending.message_send(
            owner=user,
            conversation_id=session_id,
            content=param_text(params, "message"),
            role_slug=param_text(params, "role") or None,
            pick=await _model_pick(params),
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
    conversation = await in_thread(conversation_get)(
        owner=user, conversation_id=param_required(params, "session_id")
    )
    # The branch shown, or with tree=1 every message of every branch (oldest first), each
    # with the ids of the messages that follow it and whether it is on the branch shown.
    tree = param_flag(params, "tree")
    messages = await in_thread(message_tree if tree else message_list)(conversation=conversation)
    listed = [_message_json(message) for message in messages]
    if tree:
        children: dict[int, list[int]] = {message.pk: [] for message in messages}
        for message in messages:
            if message.parent_id in children:
                children[message.parent_id].append(message.pk)
        for message, shown in zip(messages, listed, strict=True):
            shown["children"] = children[message.pk]
            shown["shown"] = not message.superseded
    return ok(
        {
            "session_id": str(conversation.pk),
            "title": conversation.title,
            "role": conversation.role.slug,
            "messages": listed,
        }
    )


@api_view("GET")
async def chat_sessions(
    request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]
) -> HttpResponseBase:
    """The caller's conversations, newest first, a page at a time: `limit` (default 50) and
    `before`, the last session_id of the page before (`next_before`); with `q`, only those
    whose title or messages hold its words."""
    limit = param_limit(params, default=SESSIONS_PAGE, most=SESSIONS_MAX_LIMIT)
    query = param_query(params, required=False)
    before = None
    if param_text(params, "before"):
        before = await in_thread(conversation_get)(owner=user, conversation_id=params["before"])
    page = await in_thread(conversation_summaries)(owner=user, limit=limit + 1, before=before, query=query)
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
    data = param_text(params, "image_data").strip()
    if not data:
        if param_text(params, "image_type"):
            raise services.ChatError(_("image_type was sent without image_data."), code="invalid_image")
        return None
    return images.attachment_base64_create(
        owner=user, image_data=data, image_type=param_text(params, "image_type")
    )


def _image_sent(request: HttpRequest, params: dict[str, Any]) -> bool:
    # Anything but absent or empty goes to _image_attach, which refuses what is not text.
    return bool(request.FILES) or any(
        params.get(name) not in (None, "") for name in ("image_data", "image_type")
    )


async def _model_pick(params: dict[str, Any]) -> ModelPick | None:
    """The demo's `provider` and `model` fields (both optional). A model named without
    its provider is looked for among every provider's models."""
    provider, model = param_text(params, "provider").strip(), param_text(params, "model").strip()
    if not provider and not model:
        return None
    if not provider:
        provider = next((c.provider for c in await in_thread(model_choices)() if c.model == model), "")
    return ModelPick(provider=provider, model=model)


@api_view("GET")
async def providers(request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]) -> HttpResponseBase:
    """The providers and models users may pick, in the demo's later shape: never a key or a URL."""
    choices = await in_thread(model_choices)()
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
    active = await in_thread(role_list_active)()
    return ok({"roles": [{"slug": r.slug, "name": r.name, "description": r.description} for r in active]})


@api_view("DELETE")
async def chat_session(
    request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]
) -> HttpResponseBase:
    session_id = str(params["session_id"])
    # Not the writer thread: deleting sends stop requests to Redis, which must not hold
    # every process's writes up while Redis is slow.
    await database_sync_to_async(services.conversation_delete)(owner=user, conversation_id=session_id)
    return ok({"deleted": True, "session_id": session_id})


@login_not_required
@csrf_exempt
def not_found(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return error_response(404, "not_found", _("No such API endpoint."))
