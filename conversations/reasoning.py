"""A reply's "thinking" and its answer, carried as one text while the reply is written.

The reply engine (publisher, log, hub) moves one text per reply and guarantees it
arrives exactly once, in order, through reloads and Redis outages, and that a stop
keeps exactly what the user saw. The model's reasoning rides in that same text,
between two control characters, so it gets every one of those guarantees for free:

    THINK_START + reasoning + THINK_END + answer

The reasoning always comes first (llm.chat_stream makes it so). Saving splits the text
into `Message.reasoning` and `Message.content`; only the content goes back upstream.
Neither character can come from a provider: llm.chat_stream takes them out of its text.
"""

import re
from dataclasses import dataclass
from typing import Literal

THINK_START = "\x02"
THINK_END = "\x03"
MARKERS = re.compile("[\x02\x03]")
_PIECES = re.compile("([\x02\x03])")


def markers_strip(text: str) -> str:
    """A provider's text without the two characters that mean something here."""
    return MARKERS.sub("", text) if "\x02" in text or "\x03" in text else text


def reasoning_split(raw: str) -> tuple[str, str]:
    """(reasoning, answer) of a reply's text as the engine carries it."""
    if not raw.startswith(THINK_START):
        return "", raw
    reasoning, _end, answer = raw[1:].partition(THINK_END)
    return reasoning, answer


def reasoning_join(reasoning: str, answer: str) -> str:
    """The engine's text of a saved reply (the inverse of reasoning_split)."""
    return f"{THINK_START}{reasoning}{THINK_END}{answer}" if reasoning else answer


def answer_started(raw: str) -> bool:
    """Whether the answer has begun (or there was no reasoning at all)."""
    return not raw.startswith(THINK_START) or THINK_END in raw


@dataclass(frozen=True)
class Piece:
    kind: Literal["reasoning", "answer", "thought"]  # thought: the reasoning just ended
    text: str = ""


class Splitter:
    """Turns a watcher's stream of deltas of the engine's text into reasoning and answer."""

    def __init__(self, known: str = "") -> None:
        self.thinking = False
        self.feed(known)

    def feed(self, delta: str) -> list[Piece]:
        pieces: list[Piece] = []
        for piece in _PIECES.split(delta):
            if piece == THINK_START:
                self.thinking = True
            elif piece == THINK_END:
                self.thinking = False
                pieces.append(Piece("thought"))
            elif piece:
                pieces.append(Piece("reasoning" if self.thinking else "answer", piece))
        return pieces


TAG_OPEN = "<think>"
TAG_CLOSE = "</think>"


class ThinkTags:
    """Finds R1-style inline `<think>...</think>` at the start of a model's content.

    The tags may be split across chunks. Only a `<think>` that opens the content (after
    whitespace) counts: an answer that mentions the tag later is left as it is.
    """

    def __init__(self) -> None:
        self.state: Literal["start", "thinking", "answer"] = "start"
        self.held = ""  # text that may be the start of a tag, waiting for more
        self.trim = False

    def feed(self, text: str) -> list[tuple[Literal["reasoning", "answer"], str]]:
        self.held += text
        out: list[tuple[Literal["reasoning", "answer"], str]] = []
        if self.state == "start":
            stripped = self.held.lstrip()
            if TAG_OPEN.startswith(stripped):
                return out  # nothing but whitespace, or the tag's beginning, so far
            if not stripped.startswith(TAG_OPEN):
                self.state, rest, self.held = "answer", self.held, ""
                return [("answer", rest)]
            self.state, self.held = "thinking", stripped[len(TAG_OPEN) :]
        if self.state == "thinking":
            before, found, after = self.held.partition(TAG_CLOSE)
            if not found:
                keep = _partial_suffix(self.held, TAG_CLOSE)
                reasoning, self.held = self.held[: len(self.held) - keep], self.held[len(self.held) - keep :]
                return [("reasoning", reasoning)] if reasoning else out
            if before:
                out.append(("reasoning", before))
            self.state, self.held, self.trim = "answer", after, True
        if self.trim:  # the line breaks after </think>, which may come in later chunks
            self.held = self.held.lstrip("\n")
            if not self.held:
                return out
            self.trim = False
        rest, self.held = self.held, ""
        out.append(("answer", rest))
        return out

    def flush(self) -> list[tuple[Literal["reasoning", "answer"], str]]:
        """What was held back at the end of the stream (an unfinished tag is text)."""
        held, self.held = self.held, ""
        if not held:
            return []
        return [("reasoning" if self.state == "thinking" else "answer", held)]


def _partial_suffix(text: str, tag: str) -> int:
    """How many of text's last characters are the start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
