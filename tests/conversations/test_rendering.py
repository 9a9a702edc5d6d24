from html.parser import HTMLParser
from typing import Any

import pytest

from conversations import rendering
from conversations.rendering import MarkdownStream, render_markdown

pytestmark = pytest.mark.django_db  # the rendered HTML is cached in Redis


def test_markdown_is_rendered():
    html = render_markdown("**bold** and `code`")

    assert "<strong>bold</strong>" in html
    assert "<code>code</code>" in html


def test_fenced_code_is_highlighted():
    html = render_markdown("```python\nx = 1\n```")

    assert '<code class="language-python">' in html
    assert '<span class="n">x</span>' in html


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[click](vbscript:msgbox(1))",
        '<a href="#" hx-get="/admin/">x</a>',
        "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
        "<svg onload=alert(1)>",
        "![x](https://evil.example/leak?q=secret)",
    ],
)
def test_hostile_model_output_is_neutralised(hostile):
    elements = _elements(str(render_markdown(hostile)))

    for tag, attributes in elements:
        assert tag not in {"script", "img", "iframe", "svg", "form", "style"}
        for name, value in attributes:
            assert not name.startswith(("on", "hx-", "data-hx-", "style"))
            if name == "href":
                assert (value or "").startswith(("http://", "https://", "mailto:", "#"))


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, attrs))


def _elements(html: str):
    collector = _Collector()
    collector.feed(html)
    return collector.elements


def test_links_keep_safe_urls_and_get_a_safe_rel():
    elements = _elements(str(render_markdown("[docs](https://example.com/a)")))

    assert elements == [
        ("p", []),
        ("a", [("href", "https://example.com/a"), ("rel", "noopener noreferrer nofollow")]),
    ]


# --- While a reply is being written ---------------------------------------------------------------

ANSWER = (
    "# Photosynthesis\n\nPlants turn **light** into sugar.\nIn two stages:\n\n"
    "1. the light reactions\n2. the Calvin cycle\n\n"
    "```python\ndef sugar(light):\n    return light * 2\n```\n\n"
    "| stage | where |\n|---|---|\n| light | thylakoid |\n| dark | stroma |\n\n"
    "> A quote\n> on two lines\n\n---\n\nSetext heading\n--------------\n\nThe end."
)


def streamed(text: str, size: int) -> str:
    stream = MarkdownStream()
    html = ""
    for at in range(0, len(text), size):
        stream.feed(text[at : at + size])
        done, _tail = stream.take()
        html += done
    return html + stream.take()[1]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50, 10_000])
def test_streamed_markdown_ends_as_the_final_render(size):
    assert streamed(ANSWER, size) == str(render_markdown(ANSWER))


def test_only_the_unfinished_tail_is_rendered_again(monkeypatch):
    """The cost per frame stays flat: a long answer is not re-rendered on every token."""
    rendered: list[int] = []
    real = rendering._render

    def counting(text: str, **options: Any) -> str:
        rendered.append(len(text))
        return real(text, **options)

    monkeypatch.setattr(rendering, "_render", counting)
    paragraphs = "".join(f"Paragraph {n} says something about plants and light.\n\n" for n in range(120))
    stream = MarkdownStream()
    for at in range(0, len(paragraphs), 4):  # ~1,600 tokens of 4 characters
        stream.feed(paragraphs[at : at + 4])
        stream.take()

    assert len(paragraphs) > 6000
    assert sum(rendered) < 40 * len(paragraphs)  # a whole re-render per token: ~800x


def test_a_partial_last_line_finishes_nothing():
    stream = MarkdownStream("A paragraph\n#")  # "#" could still become "#hashtag", text of the paragraph
    done, _tail = stream.take()

    assert done == ""
    assert stream.committed == 0
    stream.feed("hashtag\n\nNext")
    assert stream.take() == ("", "<p>A paragraph\n#hashtag</p>\n<p>Next</p>\n")
    stream.feed(" one\n")  # the next block's first line is complete: the paragraph is finished
    assert stream.take() == ("<p>A paragraph\n#hashtag</p>\n", "<p>Next one</p>\n")


def test_finished_blocks_are_handed_out_once():
    stream = MarkdownStream("One\n\nTwo\n\nThr")
    first = stream.take()
    stream.feed("ee\n")
    second = stream.take()
    stream.feed("\nFour")
    third = stream.take()

    assert first == ("<p>One</p>\n", "<p>Two</p>\n<p>Thr</p>\n")
    assert second == ("<p>Two</p>\n", "<p>Three</p>\n")
    assert third == ("", "<p>Three</p>\n<p>Four</p>\n")


def test_a_reattached_stream_continues_like_one_that_saw_every_token():
    text = ANSWER[: len(ANSWER) // 2]
    fed = MarkdownStream()
    for char in text:
        fed.feed(char)

    assert MarkdownStream(text).committed == fed.committed > 0


def test_the_page_renders_a_reply_being_written_with_its_tail_element():
    html = str(render_markdown("Done block\n\nTail <b>x</b>\n", tail_id="msg-7-tail"))

    tail = '<div id="msg-7-tail" class="stream-tail"><p>Tail &lt;b&gt;x&lt;/b&gt;</p>\n</div>'
    assert html == "<p>Done block</p>\n" + tail


def test_carriage_returns_end_lines_as_markdown_reads_them():
    stream = MarkdownStream("One\r\n\r\nTwo\r\rThree\r")

    assert stream.take() == ("<p>One</p>\n<p>Two</p>\n", "<p>Three</p>\n")
