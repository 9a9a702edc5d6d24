"""Page loads (`./run bench --pages`): the chat page with a long conversation list, and one
long conversation, timed over plain HTTP with a signed-in session."""

import time
import urllib.request
from dataclasses import dataclass

from bench.report import percentiles

PAGE_TARGET_P95_MS = 200.0


@dataclass(frozen=True)
class Reader:
    cookie: str
    long_conversation: str


def prepare_reader(*, conversations: int, messages: int) -> Reader:
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
    return Reader(cookie=cookie, long_conversation=str(long_one.pk))


def measure_pages(*, port: int, reader: Reader, loads: int) -> dict[str, dict[str, float] | None]:
    base = f"http://127.0.0.1:{port}"
    urls = {"chat page": f"{base}/", "long conversation": f"{base}/c/{reader.long_conversation}/"}
    figures: dict[str, dict[str, float] | None] = {}
    for name, url in urls.items():
        timings = []
        for _ in range(loads):
            request = urllib.request.Request(url, headers={"Cookie": reader.cookie})
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
            timings.append((time.perf_counter() - started) * 1000)
        figures[name] = percentiles(timings)
    return figures


def pages_text(figures: dict[str, dict[str, float] | None], *, conversations: int, messages: int) -> str:
    labels = {
        "chat page": f"chat page, {conversations} conversations",
        "long conversation": f"conversation of {messages} messages",
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
