"""Text from data (the registry, access applications, lake tables) as it enters a Markdown document.

A dataset card is read rendered (a repository page, a data portal), where a registry description
holding `<script>` or `<img onerror=...>` would run, and a `|`, `#`, `[...](...)` or newline would
break a table, open a heading or add a link. What comes out of here renders, in any CommonMark or
GFM renderer, as exactly the text that went in, on one line.
"""

from __future__ import annotations

import html
import re

_SPACE = re.compile(r"\s+")
# Punctuation that starts inline markup: code spans, emphasis, strike-through, links and images,
# table cells, ATX headings (and their closing #s). CommonMark lets any of it be backslash-escaped.
_INLINE_MARKUP = re.compile(r"([\\`*_~\[\]|#])")
# Markers that mean something only at the start of a line (list items, setext underlines); the text
# may start one, as the first line of a section or the content of a list item.
_LEADING_MARKER = re.compile(r"^(?:([-+=])|(\d+)([.)]))")
_BACKTICKS = re.compile(r"`+")


def _one_line(value: object) -> str:
    return _SPACE.sub(" ", str(value)).strip()


def inline(value: object) -> str:
    """`value` as literal Markdown text on one line: HTML escaped, markup characters escaped."""
    text = _INLINE_MARKUP.sub(r"\\\1", html.escape(_one_line(value), quote=False))
    return _LEADING_MARKER.sub(lambda m: f"\\{m.group(1)}" if m.group(1) else f"{m.group(2)}\\{m.group(3)}", text)


def code(value: object) -> str:
    """`value` as one code span (shown verbatim: nothing inside a code span is markup or HTML).
    Not for table cells, where GFM still reads a `|` inside code as a cell break."""
    text = _one_line(value)
    fence = "`" * (1 + max((len(run) for run in _BACKTICKS.findall(text)), default=0))
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
