"""What the malformed-input tests share (tests/security/test_fuzz_*.py): the corpus's
sizes and content types, the database before and after, and the API's error shape.

Each corpus entry carries a defect every route must refuse, so after each request the
database must be as it was. Failures are collected per route and reported together,
each with its input.
"""

import json
from typing import Any

from asgiref.sync import sync_to_async
from django.apps import apps

from conversations.models import Conversation, Message

ONE_MIB = 1024 * 1024
DEEP = 100_000
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# What a route changes whatever it is sent: signing out ends the session.
CHANGED_BY_ANY_REQUEST = {"logout": {"sessions.Session"}}
WRONG_TYPES: list[Any] = [{"text": "hi"}, ["hi"], 7, 2.5, True]


# --- The database before and after -------------------------------------------------------------


def snapshot(ignore: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """Row counts of every model, and the content of every conversation and message."""
    state: dict[str, Any] = {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model._meta.label not in ignore
    }
    state["conversations"] = list(Conversation.objects.order_by("pk").values_list())
    state["messages"] = list(Message.objects.order_by("pk").values_list())
    return state


asnapshot = sync_to_async(snapshot)


def diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    changes = []
    for key in before:
        if isinstance(before[key], list):
            gone = [row for row in before[key] if row not in after[key]]
            new = [row for row in after[key] if row not in before[key]]
            if gone or new:
                changes.append(f"{key}: {gone!r:.200} -> {new!r:.200}")
        elif before[key] != after[key]:
            changes.append(f"{key}: {before[key]} -> {after[key]}")
    return "; ".join(changes)


def is_api_error(content: bytes) -> bool:
    try:
        error = json.loads(content)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and set(error) >= {"code", "message"}
