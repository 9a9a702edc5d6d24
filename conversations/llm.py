"""The one way Chatsite reaches a model: the `openai` SDK's AsyncOpenAI, streaming.

Only this module and the providers app (one client per provider) import `openai`. Provider failures become
`ProviderError`s whose `user_message` is safe to show in the conversation.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import openai
from django.conf import settings
from django.utils.translation import gettext as _
from openai.types.chat import ChatCompletionMessageParam

from conversations.metrics import UPSTREAM_ERRORS
from conversations.reasoning import THINK_END, THINK_START, ThinkTags, markers_strip
from providers.clients import client_for, models_list
from providers.selectors import Endpoint, default_endpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str
    images: tuple[str, ...] = ()  # data: URLs, for a model that reads images

    def as_dict(self) -> dict[str, object]:
        if not self.images:
            return {"role": self.role, "content": self.content}
        # OpenAI's content parts: the text, then each image.
        parts: list[dict[str, object]] = [{"type": "text", "text": self.content}] if self.content else []
        parts += [{"type": "image_url", "image_url": {"url": url}} for url in self.images]
        return {"role": self.role, "content": parts}

    def as_param(self) -> ChatCompletionMessageParam:
        return cast(ChatCompletionMessageParam, self.as_dict())


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


class ProviderError(Exception):
    """A reply could not be (fully) produced. `user_message` is shown to the user."""

    def __init__(self, user_message: str, *, interrupted: bool = False) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        # True when the connection broke after text arrived: the partial reply is kept
        # as `interrupted` rather than `error`.
        self.interrupted = interrupted


class ProviderNotConfigured(ProviderError):
    pass


def provider_get() -> Endpoint | None:
    """The default provider (.env's OPENAI_*), or None when neither a key nor a base URL is set."""
    return default_endpoint()


def _error_message(exc: Exception) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return _("The model took too long to answer. Please try again.")
    if isinstance(exc, openai.APIConnectionError):
        return _("Could not reach the model provider. Please try again in a moment.")
    if isinstance(exc, openai.RateLimitError):
        return _("The model provider is busy (rate limited). Please wait a moment and try again.")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return _("The model provider refused the API key. An administrator must check it.")
    if isinstance(exc, openai.NotFoundError):
        return _("The model provider does not know this model. An administrator must check it.")
    if isinstance(exc, openai.APIStatusError):
        return _("The model provider returned an error (HTTP %(status)s). Please try again.") % {
            "status": exc.status_code
        }
    return _("The model provider failed unexpectedly. Please try again.")


RETRY_DELAY_SECONDS = 0.5


def _retry_delay(exc: openai.OpenAIError) -> float | None:
    """How long to wait before the one retry, or None when this failure is not retried.

    Only failures before the first byte get here, so a retry never repeats text.
    """
    if isinstance(exc, openai.APITimeoutError):
        return None  # the provider already had the whole read timeout
    if isinstance(exc, openai.RateLimitError):
        header = exc.response.headers.get("retry-after", "")
        try:
            wait = float(header)
        except ValueError:
            return RETRY_DELAY_SECONDS
        # A provider that asks for a long wait is busy: tell the user now, not in minutes.
        return wait if 0 <= wait <= settings.OPENAI_RETRY_AFTER_CAP else None
    if isinstance(exc, openai.InternalServerError | openai.APIConnectionError):
        return RETRY_DELAY_SECONDS
    return None


async def _create_stream[T](create: Callable[[], Awaitable[T]]) -> T:
    for attempt in range(settings.OPENAI_MAX_RETRIES + 1):
        try:
            return await create()
        except openai.OpenAIError as exc:
            delay = _retry_delay(exc)
            if delay is None or attempt == settings.OPENAI_MAX_RETRIES:
                raise
            logger.info("Upstream failed (%r); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def chat_stream(
    *,
    messages: list[ChatMessage],
    model: str = "",
    temperature: float | None = None,
    endpoint: Endpoint | None = None,
) -> AsyncIterator[str | Usage]:
    """Yield the reply's text deltas as they arrive, then its Usage if the provider reports it.

    `endpoint` is the provider (the default one when None); `model` is one of its models
    (OPENAI_MODEL when empty). Raises ProviderError. Cancelling the iteration closes the
    upstream HTTP response.
    """
    provider = endpoint or provider_get()
    if provider is None:
        raise ProviderNotConfigured(
            _(
                "No model provider is configured. Set OPENAI_API_KEY and/or "
                "OPENAI_BASE_URL (and OPENAI_MODEL) in .env, then restart Chatsite."
            )
        )
    client = client_for(provider)
    received_text = False
    for attempt in range(settings.OPENAI_MAX_RETRIES + 1):
        try:
            # The SDK's own request and stream (auth, retries, SSE decoding, errors in the
            # stream, timeouts), given the body as the JSON it is: create() walks every
            # message through its typed parameters first, ~1.9 ms a request (py-spy, 200
            # replies starting at once). Each chunk stays a plain dict: building its
            # pydantic model cost ~90 us a token, a core's worth at 10,000 tokens a second.
            stream = await _create_stream(
                lambda: client.post(
                    "/chat/completions",
                    body=_request_body(messages=messages, model=model, temperature=temperature),
                    cast_to=object,
                    stream=True,
                    stream_cls=openai.AsyncStream[object],
                )
            )
            deltas = _Deltas()
            async with stream:
                async for chunk in stream:
                    for item in deltas.items(chunk):
                        received_text = received_text or isinstance(item, str)
                        yield item
            for item in deltas.flush():
                yield item
            return
        except openai.OpenAIError as exc:
            # Not the exception itself: a provider's error body can echo the API key.
            status = getattr(exc, "status_code", "-")
            logger.warning("Upstream model call failed: %s (HTTP %s)", type(exc).__name__, status)
            UPSTREAM_ERRORS.labels(type(exc).__name__).inc()
            if _hung_before_text(exc, received_text) and attempt < settings.OPENAI_MAX_RETRIES:
                # The provider answered, then sent nothing: nothing was shown, so one more
                # try repeats no text.
                logger.info("Upstream stream hung before any text; retrying once")
                continue
            raise ProviderError(_stream_error_message(exc, received_text), interrupted=received_text) from exc
        except Exception as exc:  # the transport raises its own errors when a stream breaks
            logger.warning("Upstream stream broke: %s", type(exc).__name__)
            UPSTREAM_ERRORS.labels("dropped").inc()
            raise ProviderError(_dropped_message(), interrupted=received_text) from exc


async def chat_text(
    *, messages: list[ChatMessage], model: str, temperature: float | None, endpoint: Endpoint | None
) -> str:
    """A whole answer's text (for the short requests Chatsite makes itself: titles, summaries)."""
    parts = [
        item
        async for item in chat_stream(
            messages=messages, model=model, temperature=temperature, endpoint=endpoint
        )
        if isinstance(item, str)
    ]
    return "".join(parts)


def _request_body(*, messages: list[ChatMessage], model: str, temperature: float | None) -> dict[str, object]:
    body: dict[str, object] = {
        "model": model or settings.OPENAI_MODEL,
        "messages": [message.as_dict() for message in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if temperature is not None:
        body["temperature"] = temperature
    return body


class _Deltas:
    """The text deltas and the usage of a stream's `chat.completion.chunk`s (decoded JSON).

    Reasoning (`delta.reasoning_content`, `delta.reasoning`, or an inline `<think>` that
    opens the content) is marked off as conversations.reasoning describes: it comes
    first, and reasoning after the answer has begun is left out of the reply.
    """

    def __init__(self) -> None:
        self.tags = ThinkTags()
        self.thinking = False
        self.answered = False

    def items(self, chunk: object) -> list[str | Usage]:
        if not isinstance(chunk, dict):
            return []
        items: list[str | Usage] = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning and isinstance(reasoning, str):
                items += self._text("reasoning", reasoning)
            content = delta.get("content")
            if content and isinstance(content, str):
                for kind, text in self.tags.feed(content):
                    items += self._text(kind, text)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            items.append(
                Usage(
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                )
            )
        return items

    def flush(self) -> list[str | Usage]:
        items: list[str | Usage] = []
        for kind, text in self.tags.flush():
            items += self._text(kind, text)
        return items

    def _text(self, kind: str, text: str) -> list[str | Usage]:
        text = markers_strip(text)
        if not text:
            return []
        if kind == "reasoning":
            if self.answered:
                return []
            opened, self.thinking = not self.thinking, True
            return [THINK_START + text if opened else text]
        closed, self.thinking, self.answered = self.thinking, False, True
        return [THINK_END + text if closed else text]


def _hung_before_text(exc: openai.OpenAIError, received_text: bool) -> bool:
    return not received_text and isinstance(exc, openai.APITimeoutError | openai.APIConnectionError)


def _dropped_message() -> str:
    return _("The provider's connection dropped mid-reply. The reply is incomplete.")


def _stream_error_message(exc: openai.OpenAIError, received_text: bool) -> str:
    """After text was shown, say what happened to the reply, not that the provider is unreachable."""
    if received_text and isinstance(exc, openai.APITimeoutError):
        return _("The model took too long to send the rest of the reply. The reply is incomplete.")
    if received_text and isinstance(exc, openai.APIConnectionError):
        return _dropped_message()
    return _error_message(exc)


async def provider_reachable(*, within: float = 5.0, endpoint: Endpoint | None = None) -> bool:
    """Whether the provider (the default one when None) lists its models within `within`
    seconds (no tokens spent). Called as each serving process starts, it also makes the
    process's client and its first connection before a user needs them. Measured: making
    the client cost ~60 ms of CPU and the SDK's first request in a process ~50 ms more
    than the next, which the first user of each serving process paid."""
    provider = endpoint or provider_get()
    if provider is None:
        return False
    try:
        async with asyncio.timeout(within):
            await models_list(provider)
    except (openai.OpenAIError, TimeoutError) as exc:
        logger.info("Could not reach the provider %s (%s)", provider.name, type(exc).__name__)
        return False
    return True


@dataclass(frozen=True)
class CheckStep:
    name: str
    ok: bool
    detail: str
    milliseconds: float


async def provider_check(*, endpoint: Endpoint | None = None, model: str = "") -> list[CheckStep]:
    """Check a provider (the default one when None) step by step; stops at the first step
    that fails. `model` is the one to try (OPENAI_MODEL when empty)."""
    provider = endpoint or provider_get()
    if provider is None:
        return [CheckStep("configuration", False, "no OPENAI_API_KEY or OPENAI_BASE_URL set", 0.0)]
    model = model or settings.OPENAI_MODEL
    steps = [CheckStep("configuration", True, f"{provider.name}: {model} at {provider.base_url}", 0.0)]
    client = client_for(provider)
    loop = asyncio.get_running_loop()

    started = loop.time()
    try:
        models = await models_list(provider)
    except openai.OpenAIError as exc:
        steps.append(CheckStep("reach the base URL", False, _error_message(exc), _ms(loop, started)))
        return steps
    steps.append(CheckStep("reach the base URL", True, f"{len(models)} models listed", _ms(loop, started)))
    listed = model in models
    steps.append(
        CheckStep(
            "model listed",
            listed,
            model if listed else f"{model} is not among: {', '.join(models[:10])}",
            0.0,
        )
    )
    if not listed:
        return steps

    started = loop.time()
    try:
        completion = await client.chat.completions.create(
            model=model,
            messages=[ChatMessage(role="user", content="Say OK.").as_param()],
            max_tokens=1,
        )
    except openai.OpenAIError as exc:
        steps.append(CheckStep("1-token completion", False, _error_message(exc), _ms(loop, started)))
        return steps
    text = completion.choices[0].message.content if completion.choices else None
    steps.append(CheckStep("1-token completion", True, repr(text or ""), _ms(loop, started)))
    return steps


def _ms(loop: asyncio.AbstractEventLoop, started: float) -> float:
    return (loop.time() - started) * 1000
