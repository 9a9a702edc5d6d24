"""Reading import files: ChatGPT's tree flattened to the branch on screen, Chatsite's own
export, zips, and files that cannot be read."""

import json
from datetime import UTC, datetime

import pytest

from conversations.copies import Turn
from conversations.import_formats import Imported, ImportRefused, imported_from
from tests.conversations.imports_samples import (
    chatgpt_conversation,
    chatgpt_file,
    chatgpt_node,
    chatsite_document,
    zipped,
)

MAX_BYTES = 10 * 1024 * 1024


def read(data: bytes) -> list[Imported]:
    return imported_from(data, max_bytes=MAX_BYTES)


def test_a_chatgpt_conversation_keeps_the_branch_on_screen_and_only_what_was_shown():
    [imported] = read(chatgpt_file())

    assert imported.key == "chatgpt:c0ffee-1"
    assert imported.title == "Tides"
    assert imported.turns == (
        Turn("Why are there tides?", "The **Moon** pulls the sea."),
        Turn("And the Sun?", "It pulls too, less."),
    )
    assert imported.created_at == datetime.fromtimestamp(1_700_000_000.5, tz=UTC)


def test_a_chatgpt_conversation_without_a_current_node_follows_its_last_leaf():
    conversation = chatgpt_conversation()
    del conversation["current_node"]

    [imported] = read(chatgpt_file(conversation))

    assert imported.turns[-1] == Turn("And the Sun?", "It pulls too, less.")


def test_a_chatgpt_image_leaves_its_text_and_an_image_alone_leaves_nothing():
    conversation = chatgpt_conversation()
    conversation["mapping"]["q2"]["message"]["content"] = {
        "content_type": "multimodal_text",
        "parts": [
            {"content_type": "image_asset_pointer", "asset_pointer": "file-service://x"},
            "What is this?",
        ],
    }

    [imported] = read(chatgpt_file(conversation))

    assert imported.turns[1].question == "What is this?"


def test_a_chatsite_export_leaves_out_failed_replies_and_keeps_a_stopped_ones_status():
    [imported] = read(json.dumps(chatsite_document()).encode())

    assert imported.key == "chatsite:0b6f5cde-7c9a-4c1e-9d59-8d1b2f3a4c5d"
    assert imported.role_slug == "teacher"
    assert imported.turns == (Turn("One?", "First."), Turn("Two?", "Sec", "stopped"), Turn("Three?", ""))


def test_the_zip_of_a_chatsite_export_is_read_through_its_conversations_json():
    everything = {"conversations": [chatsite_document(), chatsite_document(ident="a", title="Other")]}

    found = read(zipped("conversations.json", json.dumps(everything).encode()))

    assert [imported.title for imported in found] == ["Counting", "Other"]


def test_the_zip_of_a_chatgpt_export_is_read_through_its_conversations_json():
    [imported] = read(zipped("export/conversations.json", chatgpt_file()))

    assert imported.title == "Tides"


def test_a_conversation_with_no_text_is_not_imported():
    empty = chatgpt_conversation()
    empty["mapping"] = {"root": chatgpt_node("root", None, [], None)}
    empty["current_node"] = "root"

    assert read(chatgpt_file(empty)) == []


def test_a_cycle_in_a_chatgpt_tree_ends_the_branch():
    looped = chatgpt_conversation()
    looped["mapping"]["q1"]["parent"] = "a2"  # the oldest question points at the newest answer

    [imported] = read(chatgpt_file(looped))

    assert imported.turns[0].question == "Why are there tides?"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\xff\xfe not utf-8", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b'{"something": "else"}', "not a Chatsite export or a ChatGPT"),
        (b"PK\x03\x04 broken zip", "cannot be read"),
        (zipped("other.json", b"[]"), "no conversations.json"),
        (b'[{"title": "x"}]', "Conversation 1 in the file cannot be read: it has no messages."),
        (b'{"messages": [{"author": "robot", "content": "x"}]}', "a message has no author"),
        (b'{"messages": [{"author": "user", "content": 5}]}', "not plain text"),
        (b'{"messages": [{"author": ["user"], "content": "x"}]}', "a message has no author"),
        (b"[" + b"1" * 5000 + b"]", "not valid JSON"),
        (zipped("conversations.json", b"[" + b" " * MAX_BYTES + b"]"), "too large"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_with_a_reason(data, says):
    with pytest.raises(ImportRefused) as refused:
        read(data)

    assert says in refused.value.message


@pytest.mark.parametrize(
    ("data", "questions"),
    [
        (b'{"messages": [{"author": "user", "content": "x", "status": {}}]}', ["x"]),
        (
            b'[{"mapping": {"a": {"message": {"author": {"role": ["user"]}, "content": {"parts": ["x"]}}}}}]',
            [],
        ),
        (
            b'[{"mapping": {"a": {"message": {"author": {"role": "user"}, '
            b'"content": {"content_type": []}}}}}]',
            [],
        ),
    ],
)
def test_a_value_that_is_not_a_name_where_a_name_belongs_is_no_name(data, questions):
    found = read(data)

    assert [turn.question for imported in found for turn in imported.turns] == questions


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", 1e20, True])
def test_a_date_that_cannot_be_stored_is_no_date(when):
    document = chatsite_document()
    document["created_at"] = document["updated_at"] = when

    [imported] = read(json.dumps(document).encode())

    assert imported.created_at is None and imported.updated_at is None
