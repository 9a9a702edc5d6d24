"""Model output is untrusted: Markdown is rendered, then sanitised, then marked safe.

markdown-it runs with raw HTML off, Pygments highlights fenced code, and nh3
(an allow-list sanitiser) cleans the result *after* rendering, so nothing the
renderer produces from hostile text can carry script, event handlers, unsafe
URLs or htmx attributes.
"""

import hashlib

import nh3
from django.core.cache import cache
from markdown_it import MarkdownIt
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

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


def render_markdown(text: str) -> Markup:
    """Sanitised HTML for a finished message; cached by content, so history pages stay fast."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    key = f"md:{RENDER_VERSION}:{digest}"
    html: str | None = cache.get(key)
    if html is None:
        html = sanitise(_markdown.render(text))
        cache.set(key, html, RENDER_CACHE_SECONDS)
    return Markup(html)
