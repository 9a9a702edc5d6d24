import pytest

from conversations.reasoning import (
    THINK_END,
    THINK_START,
    Piece,
    Splitter,
    ThinkTags,
    answer_started,
    markers_strip,
    reasoning_join,
    reasoning_split,
)


def test_a_reply_without_reasoning_is_all_answer():
    assert reasoning_split("Hello") == ("", "Hello")


def test_the_reasoning_and_the_answer_are_split_apart():
    assert reasoning_split(f"{THINK_START}Let me see.{THINK_END}Four.") == ("Let me see.", "Four.")


def test_a_reply_stopped_while_thinking_has_reasoning_and_no_answer():
    assert reasoning_split(f"{THINK_START}Let me") == ("Let me", "")


@pytest.mark.parametrize(
    "raw", ["", "Just an answer", f"{THINK_START}hmm{THINK_END}", f"{THINK_START}hmm{THINK_END}yes"]
)
def test_joining_a_split_reply_gives_its_text_back(raw):
    assert reasoning_join(*reasoning_split(raw)) == raw


def test_the_answer_has_started_once_the_reasoning_ended():
    assert not answer_started(f"{THINK_START}hmm")
    assert answer_started(f"{THINK_START}hmm{THINK_END}")
    assert answer_started("plain")


def test_a_providers_text_cannot_carry_the_markers():
    assert markers_strip(f"a{THINK_START}b{THINK_END}c") == "abc"


def test_a_splitter_tells_reasoning_the_end_of_it_and_the_answer_apart_across_deltas():
    splitter = Splitter()

    assert splitter.feed(f"{THINK_START}Let ") == [Piece("reasoning", "Let ")]
    assert splitter.feed("me see") == [Piece("reasoning", "me see")]
    assert splitter.feed(f".{THINK_END}Four") == [
        Piece("reasoning", "."),
        Piece("thought"),
        Piece("answer", "Four"),
    ]
    assert splitter.feed(".") == [Piece("answer", ".")]


def test_a_splitter_goes_on_from_the_text_a_watcher_already_has():
    splitter = Splitter(known=f"{THINK_START}Let me")

    assert splitter.feed(" see") == [Piece("reasoning", " see")]


def feed_all(chunks):
    tags = ThinkTags()
    out = [item for chunk in chunks for item in tags.feed(chunk)] + tags.flush()
    merged: list[tuple[str, str]] = []
    for kind, text in out:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged


def test_inline_think_tags_split_the_content():
    assert feed_all(["<think>hmm</think>\n\nFour."]) == [("reasoning", "hmm"), ("answer", "Four.")]


def test_think_tags_split_across_chunks_are_found():
    chunks = ["\n<th", "ink>Let ", "me see</th", "ink>", "Four."]

    assert feed_all(chunks) == [("reasoning", "Let me see"), ("answer", "Four.")]


def test_a_think_tag_later_in_the_answer_is_text():
    assert feed_all(["Use ", "<think>", " tags"]) == [("answer", "Use <think> tags")]


def test_content_that_only_looks_like_the_start_of_a_tag_is_answer():
    assert feed_all(["<th", "e end>"]) == [("answer", "<the end>")]


def test_reasoning_that_never_closes_stays_reasoning():
    assert feed_all(["<think>still thinking"]) == [("reasoning", "still thinking")]


def test_a_close_tag_split_at_the_end_of_the_stream_is_kept_as_reasoning():
    assert feed_all(["<think>a</thi"]) == [("reasoning", "a</thi")]
