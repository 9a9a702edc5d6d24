"""Files to import, shaped as ChatGPT's data export and Chatsite's own export write them."""

import io
import json
import zipfile
from typing import Any


def chatgpt_node(
    node_id: str, parent: str | None, children: list[str], role: str | None, text: str = "", **extra: Any
):
    message = None
    if role is not None:
        message = {
            "id": node_id,
            "author": {"role": role, "name": None, "metadata": {}},
            "create_time": 1_700_000_000.0,
            "content": extra.pop("content", {"content_type": "text", "parts": [text]}),
            "status": "finished_successfully",
            "metadata": extra.pop("metadata", {}),
            "recipient": extra.pop("recipient", "all"),
        }
    return {"id": node_id, "message": message, "parent": parent, "children": children}


def chatgpt_conversation(conversation_id: str = "c0ffee-1", title: str = "Tides") -> dict[str, Any]:
    """A question answered twice (the second answer, a regenerate, is the one on screen),
    then a follow-up; with ChatGPT's root, system and hidden nodes."""
    nodes = [
        chatgpt_node("root", None, ["sys"], None),
        chatgpt_node(
            "sys",
            "root",
            ["q1"],
            "system",
            "You are ChatGPT",
            metadata={"is_visually_hidden_from_conversation": True},
        ),
        chatgpt_node("q1", "sys", ["a1", "a1b"], "user", "Why are there tides?"),
        chatgpt_node("a1", "q1", [], "assistant", "An answer set aside."),
        chatgpt_node("a1b", "q1", ["q2"], "assistant", "The **Moon** pulls the sea."),
        chatgpt_node("q2", "a1b", ["tool"], "user", "And the Sun?"),
        chatgpt_node("tool", "q2", ["a2"], "assistant", "search(sun)", recipient="browser"),
        chatgpt_node("a2", "tool", [], "assistant", "It pulls too, less."),
    ]
    return {
        "title": title,
        "create_time": 1_700_000_000.5,
        "update_time": 1_700_000_900.5,
        "mapping": {node["id"]: node for node in nodes},
        "current_node": "a2",
        "conversation_id": conversation_id,
        "id": conversation_id,
    }


def chatgpt_file(*conversations: dict[str, Any]) -> bytes:
    return json.dumps(list(conversations or [chatgpt_conversation()])).encode()


def chatsite_document(
    ident: str = "0b6f5cde-7c9a-4c1e-9d59-8d1b2f3a4c5d", title: str = "Counting"
) -> dict[str, Any]:
    return {
        "id": ident,
        "title": title,
        "role": "teacher",
        "created_at": "2026-10-01T09:00:00+00:00",
        "updated_at": "2026-10-01T09:05:00+00:00",
        "messages": [
            {"author": "user", "content": "One?", "status": "complete"},
            {"author": "assistant", "content": "First.", "status": "complete"},
            {"author": "user", "content": "Two?", "status": "complete"},
            {"author": "assistant", "content": "Sec", "status": "stopped"},
            {"author": "user", "content": "Three?", "status": "complete"},
            {"author": "assistant", "content": "", "status": "error", "error": "Upstream 500"},
        ],
    }


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()
