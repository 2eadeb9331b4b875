"""HTML twins of the Markdown pages: rendered by a Markdown library (tables, code, links), so
that a page reads the same in a browser as on a forge. Links between pages point to their
.html twins; images stay where the Markdown puts them.
"""

from __future__ import annotations

import re
from pathlib import Path

import markdown

from bench.render.format import atomic_write

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:90em;padding:0 1em;"
    "line-height:1.45;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:.9em}"
    "td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;max-width:28em}"
    "th{background:#f3f3f3}"
    "img{max-width:100%;border:1px solid #eee}code{background:#f6f6f6;padding:0 .2em}"
)
_MD_LINK = re.compile(r'href="(?![a-z]+://)([^"#]+)\.md(#[^"]*)?"')


def page(text: str) -> str:
    """A self-contained HTML page of the Markdown ``text``; its first heading is the title."""
    body = markdown.markdown(text, extensions=["tables", "fenced_code"])
    body = _MD_LINK.sub(lambda m: f'href="{m[1]}.html{m[2] or ""}"', body)
    title = re.search(r"^# (.+)$", text, re.MULTILINE)
    name = title[1].replace("`", "") if title else "cnnbench"
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{name}</title>"
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def write_twin(markdown_path: Path) -> Path:
    """Write the HTML page of ``markdown_path`` beside it (same stem, .html), atomically."""
    path = markdown_path.with_suffix(".html")
    atomic_write(path, page(markdown_path.read_text()))
    return path
