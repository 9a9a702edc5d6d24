"""`./run bench --search`: search, the chat page and its list over many conversations, timed over HTTP.

    ./run bench --search [--postgres] [--conversations 10000] [--messages 20] [--loads 20] [--json out.json]

One reader owns `--conversations` conversations of `--messages` messages each (issue 14's
sizes by default: 10,000 and 200,000), another user a tenth as many, all of words drawn
like a language's (a few very common, most rare) with Chinese among them. A word planted
in exactly PLANTED of the reader's messages, and in the other user's, checks that every
answer is right and the reader's own: a wrong one fails the run. Each query is then asked
`--loads` times through the JSON API, the conversation list's `q` and the sidebar's htmx
fragment, one request at a time over loopback: the times are the server's, plus under a
millisecond of loopback.
"""

import argparse
import json
import random
import tempfile
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.report import percentiles
from bench.stack import App, ModelServer, app_env

TARGET_MS = 100.0
PLANTED = 7
PLANTED_WORD = "quokkaplanted"
WARM_UP = 6  # requests of each page before timing: the workers share them
# A made-up language: syllables make words, and a Zipf draw makes a few of them common.
SYLLABLES = [
    "ka",
    "ri",
    "to",
    "na",
    "mi",
    "su",
    "ke",
    "ra",
    "lo",
    "pe",
    "an",
    "or",
    "ti",
    "va",
    "mo",
    "el",
    "un",
    "de",
    "sa",
    "po",
]
CHINESE = [
    "我们",
    "今天",
    "学习",
    "北京",
    "数据",
    "模型",
    "问题",
    "时间",
    "工作",
    "朋友",
    "天气",
    "电脑",
    "长城",
    "上海",
    "中文",
]


def _vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    words = {"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(size * 2)}
    return sorted(words)[:size] + CHINESE


def _text(rng: random.Random, words: list[str], weights: list[float], n: int) -> str:
    return " ".join(rng.choices(words, weights, k=n))


def _fill(*, conversations: int, messages: int, seed: int = 14) -> dict[str, Any]:
    """The reader's and the other user's conversations (Django is set up, SQLITE_PATH set)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client
    from django.utils import timezone

    from conversations.models import Conversation, Message
    from conversations.sidebar import Cursor
    from conversations.tokens import api_token_create
    from roles.models import Role
    from roles.services import role_load_builtins

    call_command("migrate", interactive=False, verbosity=0)
    role_load_builtins()
    role = Role.objects.get(slug="assistant")
    rng = random.Random(seed)
    words = _vocabulary(rng)
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    users = get_user_model().objects
    reader, other = (
        users.create_user("bench-reader", password=None),
        users.create_user("bench-other", password=None),
    )
    planted: list[int] = []
    for owner, count in ((reader, conversations), (other, max(1, conversations // 10))):
        with transaction.atomic():
            made = Conversation.objects.bulk_create(
                Conversation(owner=owner, role=role, title=_text(rng, words, weights, 4), system_prompt="-")
                for _ in range(count)
            )
            batch: list[Message] = []
            for conversation in made:
                for turn in range(1, messages // 2 + 1):
                    for author, length in (("user", 12), ("assistant", 60)):
                        batch.append(
                            Message(
                                conversation=conversation,
                                author=author,
                                content=_text(rng, words, weights, length),
                                turn=turn,
                            )
                        )
                if len(batch) >= 5000:
                    Message.objects.bulk_create(batch)
                    batch = []
            Message.objects.bulk_create(batch)
        ids = list(Message.objects.filter(conversation__owner=owner).values_list("id", flat=True))
        chosen = rng.sample(ids, min(PLANTED, len(ids)))
        for message in Message.objects.filter(pk__in=chosen):
            message.content += f" {PLANTED_WORD}"
            message.save(update_fields=["content"])
        if owner == reader:
            planted = sorted(chosen)
    # A few pinned and archived, as a user's list has them; and where a later page starts.
    listed = list(
        Conversation.objects.filter(owner=reader).order_by("-updated_at", "-id").values_list("id", flat=True)
    )
    Conversation.objects.filter(pk__in=listed[-3:]).update(pinned_at=timezone.now())
    Conversation.objects.filter(pk__in=listed[-13:-3]).update(archived_at=timezone.now())
    # Statistics as autovacuum keeps them for a table that grew: without them PostgreSQL's
    # planner guesses, and the first minutes after a bulk fill measure its guesses.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    client = Client()
    client.force_login(reader)
    return {
        "page_after": Cursor.after(Conversation.objects.get(pk=listed[len(listed) // 2])).query,
        "token": api_token_create(user=reader, name="bench")[1],
        "cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}",
        "planted": planted,
        "warm_up": words[5],
        "queries": {
            "most common word": words[0],
            "a common word": words[20],
            "a rare word": words[2000],
            "two words": f"{words[1]} {words[30]}",
            "no match": "zzqqxx",
            "Chinese, 2 characters": "北京",
            "Chinese, two words of 2 characters": "学习 数据",
            "the planted word": PLANTED_WORD,
        },
        "messages": Message.objects.count(),
    }


def _get(url: str, headers: dict[str, str]) -> tuple[float, bytes]:
    request = urllib.request.Request(url, headers=headers)
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return (time.perf_counter() - started) * 1000, body


def _measure(port: int, data: dict[str, Any], loads: int) -> dict[str, dict[str, Any]]:
    base = f"http://127.0.0.1:{port}"
    api = {"Authorization": f"Bearer {data['token']}"}
    page = {"Cookie": data["cookie"], "HX-Request": "true"}
    # Untimed first, each kind of request with a word that finds something: a worker's
    # first of a kind took up to 137 ms, once.
    warm = urllib.parse.quote(data["warm_up"])
    for _ in range(WARM_UP):
        _get(f"{base}/chat/search?q={warm}&limit=20", api)
        _get(f"{base}/chat/sessions?q={warm}", api)
        _get(f"{base}/search/?q={warm}", page)
        _get(f"{base}/", {"Cookie": data["cookie"]})
    figures: dict[str, dict[str, Any]] = {}
    for label, query in data["queries"].items():
        q = urllib.parse.quote(query)
        for kind, url, headers in (
            ("GET /chat/search", f"{base}/chat/search?q={q}&limit=20", api),
            ("GET /chat/sessions?q=", f"{base}/chat/sessions?q={q}", api),
            ("sidebar search", f"{base}/search/?q={q}", page),
        ):
            timings = [_get(url, headers)[0] for _ in range(loads)]
            figures[f"{kind}: {label} ({query})"] = percentiles(timings) or {}
    figures["chat page"] = (
        percentiles([_get(f"{base}/", {"Cookie": data["cookie"]})[0] for _ in range(loads)]) or {}
    )
    more = f"{base}/conversations/?{data['page_after']}"
    figures["the list's next page, half way down"] = (
        percentiles([_get(more, page)[0] for _ in range(loads)]) or {}
    )
    return figures


def _check(port: int, data: dict[str, Any]) -> list[str]:
    """What was answered wrong: the planted word must find exactly the reader's planted messages."""
    base = f"http://127.0.0.1:{port}"
    _ms, body = _get(
        f"{base}/chat/search?q={PLANTED_WORD}&limit=50", {"Authorization": f"Bearer {data['token']}"}
    )
    found = sorted(hit["message_id"] for hit in json.loads(body)["results"])
    return [] if found == data["planted"] else [f"the planted word found {found}, not {data['planted']}"]


def search_bench(args: argparse.Namespace) -> int:
    import os

    import django

    from chatsite.embedded_postgres import PostgresServer
    from chatsite.embedded_redis import EmbeddedRedis, free_port

    with tempfile.TemporaryDirectory(prefix="chatsite-search-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        redis = stack.enter_context(EmbeddedRedis())
        model = ModelServer(tokens=10, rate=1000.0, first_token=0.0, log=workdir / "model.log")
        stack.callback(model.stop)
        model.start()
        env = app_env(
            redis_url=redis.url,
            sqlite_path=workdir / "search.sqlite3",
            model_url=model.base_url,
            port=free_port(),
            workers=args.workers,
        )
        if args.postgres:
            # The same data and questions on a throwaway PostgreSQL (its pg_trgm indexes).
            postgres = PostgresServer().start()
            stack.callback(postgres.stop)
            env["DATABASE_URL"] = postgres.url
        os.environ.update(env)
        django.setup()
        started = time.perf_counter()
        data = _fill(conversations=args.conversations, messages=args.messages)
        print(
            f"Search: {args.conversations} conversations, {data['messages']} messages in all,"
            f" filled in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        app = App(env=env, log=workdir / "server.log")
        stack.callback(app.stop)
        app.start()
        problems = _check(app.port, data)
        figures = _measure(app.port, data, args.loads)
    lines = []
    for name, values in figures.items():
        mark = "PASS" if values["p95"] <= TARGET_MS else "FAIL"
        lines.append(f"- [{mark}] {name}: p50 {values['p50']:.0f} ms, p95 {values['p95']:.0f} ms")
    print(f"\nTimes to the whole answer (target p95 <= {TARGET_MS:.0f} ms):\n" + "\n".join(lines))
    for problem in problems:
        print(f"WRONG: {problem}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "database": "postgresql" if args.postgres else "sqlite",
                "conversations": args.conversations,
                "messages": data["messages"],
                "figures": figures,
                "problems": problems,
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return 1 if problems else 0
