"""Page loads (`./run bench --pages`): the chat page with a long conversation list, one
long conversation (issue 14: 1,000 messages open in <= 100 ms), and its earlier messages
loading as the reader scrolls up, timed over plain HTTP with a signed-in session."""

import time
import urllib.request
from dataclasses import dataclass

from bench.report import percentiles

PAGE_TARGET_P95_MS = 100.0
PAGE_CONVERSATIONS = 300
PAGE_MESSAGES = 1000


@dataclass(frozen=True)
class Reader:
    cookie: str
    long_conversation: str
    # A message half way through it: where "load earlier messages" asks from.
    middle_message: int


def prepare_reader(*, conversations: int = PAGE_CONVERSATIONS, messages: int = PAGE_MESSAGES) -> Reader:
    """A user with many conversations, the newest of them long (Django is set up already)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.test import Client

    from conversations.models import Message
    from conversations.services import conversation_create

    with transaction.atomic():
        reader = get_user_model().objects.create_user(username="bench-reader", password=None)
        for n in range(conversations):
            conversation = conversation_create(owner=reader, title=f"Conversation {n}")
            Message.objects.create(conversation=conversation, author="user", content=f"Question {n}")
            Message.objects.create(conversation=conversation, author="assistant", content=f"Answer **{n}**")
        long_one = conversation_create(owner=reader, title="A long conversation")
        for n in range(messages // 2):
            Message.objects.create(conversation=long_one, author="user", content=f"Question {n}?")
            Message.objects.create(
                conversation=long_one,
                author="assistant",
                content=f"## Answer {n}\n\nSome *Markdown* with code:\n\n```python\nprint({n})\n```\n",
            )
    client = Client()
    client.force_login(reader)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    ids = list(long_one.messages.order_by("id").values_list("id", flat=True))
    return Reader(cookie=cookie, long_conversation=str(long_one.pk), middle_message=ids[len(ids) // 2])


def measure_pages(*, port: int, reader: Reader, loads: int) -> dict[str, dict[str, float] | None]:
    base = f"http://127.0.0.1:{port}"
    long_one = f"{base}/c/{reader.long_conversation}/"
    urls = {
        "chat page": f"{base}/",
        "long conversation": long_one,
        "earlier messages": f"{long_one}messages/?before={reader.middle_message}",
    }
    figures: dict[str, dict[str, float] | None] = {}
    for name, url in urls.items():
        timings: list[float] = []
        _load(url, reader.cookie)  # the first load compiles templates: not what a reader waits for
        for _ in range(loads):
            timings.append(_load(url, reader.cookie))
        figures[name] = percentiles(timings)
    return figures


def _load(url: str, cookie: str) -> float:
    """Milliseconds to the whole answer."""
    request = urllib.request.Request(url, headers={"Cookie": cookie})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def pages_text(
    figures: dict[str, dict[str, float] | None],
    *,
    conversations: int = PAGE_CONVERSATIONS,
    messages: int = PAGE_MESSAGES,
) -> str:
    labels = {
        "chat page": f"chat page, {conversations} conversations",
        "long conversation": f"conversation of {messages} messages",
        "earlier messages": "its earlier messages, loaded on scrolling up",
    }
    lines = []
    for name, values in figures.items():
        if values:
            mark = "PASS" if values["p95"] <= PAGE_TARGET_P95_MS else "FAIL"
            lines.append(
                f"- [{mark}] {labels[name]}: p50 {values['p50']:.0f} ms, p95 {values['p95']:.0f} ms"
                f" (target p95 <= {PAGE_TARGET_P95_MS:.0f} ms)"
            )
    return "\n".join(lines)
