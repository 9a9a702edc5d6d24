"""Model output is untrusted: Markdown is rendered, then sanitised, then marked safe.

markdown-it runs with raw HTML off, Pygments highlights fenced code, and nh3
(an allow-list sanitiser) cleans the result *after* rendering, so nothing the
renderer produces from hostile text can carry script, event handlers, unsafe
URLs or htmx attributes.
"""

import hashlib
import re
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from chatsite.caches import shared_cache
from conversations.reasoning import Splitter, reasoning_split

# Bump when the rendering or the allow-list changes, so cached HTML is redone.
RENDER_VERSION = 1
RENDER_CACHE_SECONDS = 7 * 24 * 3600

_formatter = HtmlFormatter(nowrap=True)


def _highlight(code: str, language: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(language) if language else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes the code itself
    return str(highlight(code, lexer, _formatter))


_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight}).enable(
    ["table", "strikethrough"]
)
# The unfinished tail of a reply being written: the same Markdown, its code not yet
# highlighted (Pygments on a growing code block, every frame, is the costly part).
_markdown_tail = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
    ["table", "strikethrough"]
)

ALLOWED_TAGS = {
    "a",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "span",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "span": {"class"},
    "ol": {"start"},
}
# Left out on purpose: images (a remote image in model output can leak the
# conversation through its URL) and inline styles (the CSP forbids them).


def _safe_attribute(tag: str, name: str, value: str) -> str | None:
    if name == "class":
        classes = [c for c in value.split() if c.isidentifier() or c.startswith("language-")]
        return " ".join(classes) or None
    return value


def sanitise(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_safe_attribute,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def _render(text: str, *, renderer: MarkdownIt = _markdown) -> str:
    return sanitise(renderer.render(text)) if text else ""


def render_markdown(text: str, *, tail_id: str | None = None) -> Markup:
    """Sanitised HTML for a finished message; cached by content, so history pages stay fast.

    With `tail_id`, the text is a reply still being written: its finished blocks, then
    its unfinished last block in an element with that id, which streamed frames replace
    (see MarkdownStream). Not cached: the text changes with every frame.
    """
    if tail_id is not None:
        done, tail = MarkdownStream(text).take()
        return done + Markup('<div id="%s" class="stream-tail">%s</div>') % (tail_id, tail)
    digest = hashlib.sha256(text.encode()).hexdigest()
    key = f"md:{RENDER_VERSION}:{digest}"
    html: str | None = shared_cache().get(key)
    if html is None:
        html = _render(text)
        shared_cache().set(key, html, RENDER_CACHE_SECONDS)
    return Markup(html)


# The line breaks markdown-it knows (it normalises each of these to "\n").
_NEWLINE = re.compile(r"\r\n?|\n")


class MarkdownStream:
    """Markdown rendered while it is written, for the cost of its unfinished last block.

    A top-level block is finished once the next one has begun on a complete line: later
    text cannot change it. Finished blocks are rendered once and handed out once; the
    unfinished tail is rendered again each time (its code highlighted once finished).
    Both are sanitised exactly like a finished message. Cross-block details (a link to a
    reference defined further down, a list's looseness across a later paragraph) are
    settled by the final render.
    """

    def __init__(self, text: str = "") -> None:
        self.text = ""
        self.committed = 0  # characters of text already handed out as finished blocks
        self._done: list[str] = []
        if text:
            self.feed(text)

    def feed(self, delta: str) -> None:
        self.text += delta
        if "\n" not in delta and "\r" not in delta:
            return  # no new complete line: what is finished has not changed
        pending = self.text[self.committed :]
        line_ends = [match.end() for match in _NEWLINE.finditer(pending)]
        if not line_ends:
            return
        complete = line_ends[-1]  # a partial last line decides nothing yet
        starts = [
            token.map[0]
            for token in _markdown.parse(pending[:complete])
            if token.level == 0 and token.nesting >= 0 and token.map is not None
        ]
        if len(starts) < 2:
            return
        boundary = [0, *line_ends][starts[-1]]
        if boundary:
            self._done.append(_render(pending[:boundary]))
            self.committed += boundary

    def take(self) -> tuple[Markup, Markup]:
        """The blocks finished since the last call, and the unfinished tail, as safe HTML."""
        done, self._done = "".join(self._done), []
        return Markup(done), Markup(_render(self.text[self.committed :], renderer=_markdown_tail))


@dataclass(frozen=True)
class Frame:
    """What one delta changes on the page: see templates/chat/frames/delta.html."""

    done: Markup  # answer blocks finished by this delta
    tail: Markup  # the answer's unfinished last block, again
    thinking: str  # reasoning text to add to the live "Thinking" block
    thought: bool  # the reasoning has just ended: the block closes
    reasoning: str  # all the reasoning so far


class ReplyStream:
    """A reply as the page shows it while it is written: its thinking, then its answer."""

    def __init__(self, known: str = "") -> None:
        reasoning, answer = reasoning_split(known)
        self.splitter = Splitter(known)
        self.reasoning = reasoning
        self.answer = MarkdownStream(answer)

    def feed(self, delta: str) -> Frame:
        thinking: list[str] = []
        thought = False
        for piece in self.splitter.feed(delta):
            if piece.kind == "reasoning":
                thinking.append(piece.text)
            elif piece.kind == "thought":
                thought = True
            else:
                self.answer.feed(piece.text)
        added = "".join(thinking)
        self.reasoning += added
        done, tail = self.answer.take()
        return Frame(done=done, tail=tail, thinking=added, thought=thought, reasoning=self.reasoning)
