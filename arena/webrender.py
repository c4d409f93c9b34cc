"""Untrusted text (answers, prompts, judges' rationales) as HTML the web app can show safely.

Model output is untrusted: it reaches the page only through :func:`safe_markdown` (Markdown
rendered with raw HTML escaped, so ``<script>`` shows as text, then cleaned by nh3 to a small
allowlist of tags, attributes and URL schemes) or :func:`escaped`.
"""

from __future__ import annotations

import html
from typing import Any

import markdown
import nh3

ALLOWED_TAGS = {
    "p", "br", "hr", "pre", "code", "blockquote", "em", "strong", "del", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}

CSS = """
.answer-box {max-height: 30em; overflow: auto; overflow-wrap: anywhere; padding: .4em .9em;
  border: 1px solid var(--border-color-primary); border-radius: 8px; background: var(--block-background-fill);}
.answer-box pre {white-space: pre-wrap;}
.prompt-box {max-height: 14em;}
.rationale {white-space: pre-wrap; font-family: var(--font-mono); font-size: .9em;}
"""
THEME_FONTS = {
    "font": ["ui-sans-serif", "system-ui", "sans-serif"],
    "font_mono": ["ui-monospace", "monospace"],
}
"""System fonts: the default theme would fetch Google Fonts, an outside call on every page load."""


def safe_markdown(text: str | None) -> str:
    """Markdown to HTML in two layers: Markdown passes no raw HTML through (a model's `<script>` or
    `<img onerror>` shows as the text it wrote), then nh3 keeps only :data:`ALLOWED_TAGS` and
    attributes of what Markdown made, and links to http(s) and mailto (never `javascript:`)."""
    converter = markdown.Markdown(
        extensions=["fenced_code", "tables", "sane_lists"],
        extension_configs={"tables": {"use_align_attribute": True}},
    )
    converter.preprocessors.deregister("html_block")  # Python-Markdown's documented way to escape
    converter.inlinePatterns.deregister("html")  # raw HTML since safe_mode was removed
    return nh3.clean(
        converter.convert(text or ""),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
    )


def escaped(text: str | None) -> str:
    return html.escape(text or "")


def box(text: str | None, css_class: str = "answer-box") -> str:
    """Untrusted text as sanitized Markdown in a scrollable box."""
    return f'<div class="{css_class}">{safe_markdown(text)}</div>'


def prompt_box(context: list[Any], turns: list[str]) -> str:
    """The conversation so far (if any) and the user's turns, each sanitized."""
    parts = [
        f"**{escaped(str(t.get('role', 'context')))}:** {t.get('content', '')}"
        if isinstance(t, dict)
        else str(t)
        for t in context
    ]
    parts += turns if len(turns) <= 1 else [f"**Turn {i}:** {t}" for i, t in enumerate(turns, 1)]
    return box("\n\n".join(parts), "answer-box prompt-box")
