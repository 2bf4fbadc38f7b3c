"""HTML → the readable text of a page, with the standard library's tolerant HTML parser.

A model reads a page best as plain text with a little structure: headings as ``#`` lines, list items as
``- `` lines, links as ``[text](url)`` (so the model can follow them: a fetched page's links count as
URLs from the conversation), preformatted blocks kept as they are, and everything invisible dropped
(scripts, styles, templates, inline SVG, ``hidden`` elements, the ``<head>`` apart from its title).
``html.parser`` is forgiving about broken markup and adds no dependency; a page of several megabytes
takes a noticeable fraction of a second, so the fetcher runs this in a worker thread.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final
from urllib.parse import urljoin

SKIPPED_TAGS: Final = frozenset(
    {"script", "style", "noscript", "template", "svg", "math", "head", "iframe", "object", "canvas"}
)
"""Elements whose content is never text a reader sees."""
BLOCK_TAGS: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "dd", "details", "dialog", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "html", "li",
        "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "tfoot", "thead", "tr",
        "ul", "br", "h1", "h2", "h3", "h4", "h5", "h6",
    }
)  # fmt: skip
"""Elements that start a new line."""
LINE_TAGS: Final = frozenset({"li", "tr", "dt", "dd", "br"})
"""Block elements that only start a line (a list of items is not double-spaced)."""
VOID_TAGS: Final = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)
HEADING_LEVELS: Final = {f"h{n}": n for n in range(1, 7)}
_SPACES: Final = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES: Final = re.compile(r"\n{3,}")
_VERBATIM: Final = "\x00"
"""Marks a line of a ``<pre>`` block: kept as it is where other lines lose their surrounding spaces."""


class _TextExtractor(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self.skip_stack: list[str] = []
        self.in_title = False
        self.pre_depth = 0
        self.link: tuple[str, int] | None = None  # href, index of the first part of its text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
            return
        if self.skip_stack:
            if tag not in VOID_TAGS:
                self.skip_stack.append(tag)
            return
        hidden = any(name == "hidden" for name, _ in attrs) or ("aria-hidden", "true") in attrs
        if tag in SKIPPED_TAGS or (hidden and tag not in VOID_TAGS):
            self.skip_stack.append(tag)
            return
        if tag in BLOCK_TAGS:
            self.parts.append("\n\n" if tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "pre") else "\n")
        if tag in HEADING_LEVELS:
            self.parts.append("#" * HEADING_LEVELS[tag] + " ")
        elif tag == "li":
            self.parts.append("- ")
        elif tag == "pre":
            self.pre_depth += 1
            self.parts.append(_VERBATIM)
        elif tag in ("td", "th"):
            self.parts.append(" | ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.parts.append(f"[image: {alt.strip()}]")
        elif tag == "a":
            href = dict(attrs).get("href")
            if href and not href.startswith(("#", "javascript:", "mailto:", "data:")):
                self.link = (urljoin(self.base_url, href.strip()), len(self.parts))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
            return
        if self.skip_stack:
            if tag in self.skip_stack:
                while self.skip_stack and self.skip_stack.pop() != tag:
                    pass
            return
        if tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        if tag == "a" and self.link is not None:
            href, start = self.link
            self.link = None
            text = _SPACES.sub(" ", "".join(self.parts[start:])).strip()
            if text and href.startswith(("http://", "https://")):
                del self.parts[start:]
                self.parts.append(f"[{text}]({href})")
        if tag in BLOCK_TAGS and tag not in LINE_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
            return
        if self.skip_stack:
            return
        if self.pre_depth:
            self.parts.append(data.replace("\n", "\n" + _VERBATIM))
        else:
            self.parts.append(_SPACES.sub(" ", data.replace("\n", " ")))


def html_to_text(html: str, base_url: str = "") -> tuple[str, str | None]:
    """The readable text of an HTML document and its ``<title>`` (None when it has none)."""
    parser = _TextExtractor(base_url)
    parser.feed(html)
    parser.close()
    lines = [
        line.replace(_VERBATIM, "").rstrip() if _VERBATIM in line else line.strip()
        for line in "".join(parser.parts).split("\n")
    ]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    title = _SPACES.sub(" ", "".join(parser.title_parts)).strip() or None
    return text, title
