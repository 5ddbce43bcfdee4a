"""Inline SVG charts drawn in Python: no JavaScript, no external resource, no xmlns URL.

Every function returns an `<svg>` element as a string, ready to be embedded in HTML5.
Colours are shared with the page's legend (see render.CSS).
"""

from __future__ import annotations

import datetime as dt
from html import escape

FULL = "#1b7f5b"        # fully annotated
PARTIAL = "#7fc4a3"     # partially annotated
IMAGE_ONLY = "#c9d3dc"  # images only
ACHIEVED = "#2f6db5"    # a count against its target
SHARED = "#2f6db5"
WITHHELD = "#b8860b"
TRACK = "#eef1f4"
ELAPSED = "#c0392b"     # the time-elapsed mark


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def progress_bar(ratio: float | None, elapsed: float | None, width: int = 220, height: int = 14,
                 label: str = "") -> str:
    """A horizontal bar filled to `ratio` (capped at 100 %) with a vertical mark at `elapsed`."""
    parts = [f'<svg class="bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(label)}">',
             f'<rect x="0" y="2" width="{width}" height="{height - 4}" rx="2" fill="{TRACK}"/>']
    if ratio is not None and ratio > 0:
        w = min(ratio, 1.0) * width
        parts.append(f'<rect x="0" y="2" width="{_num(w)}" height="{height - 4}" rx="2" fill="{ACHIEVED}"/>')
        if ratio > 1.0:  # over target: a small chevron at the end
            parts.append(f'<path d="M{width - 6} 4 L{width - 1} {height / 2} L{width - 6} {height - 4}" '
                         f'stroke="#fff" stroke-width="1.5" fill="none"/>')
    parts.append(_elapsed_mark(elapsed, width, height))
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar(full: int, partial: int, image_only: int, target: int, elapsed: float | None,
                width: int = 200, height: int = 14, label: str = "") -> str:
    """Full / partial / image-only cases stacked on a scale of max(target, total).

    The elapsed mark sits at elapsed x target; when the total exceeds the target a dark tick marks
    the target itself.
    """
    total = full + partial + image_only
    domain = max(target, total, 1)
    parts = [f'<svg class="bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(label)}">',
             f'<rect x="0" y="2" width="{width}" height="{height - 4}" rx="2" fill="{TRACK}"/>']
    x = 0.0
    for n, colour in ((full, FULL), (partial, PARTIAL), (image_only, IMAGE_ONLY)):
        if n > 0:
            w = n / domain * width
            parts.append(f'<rect x="{_num(x)}" y="2" width="{_num(w)}" height="{height - 4}" fill="{colour}"/>')
            x += w
    if target > 0 and total > target:
        tx = target / domain * width
        parts.append(f'<line x1="{_num(tx)}" y1="0" x2="{_num(tx)}" y2="{height}" stroke="#333" stroke-width="1"/>')
    if target > 0 and elapsed is not None:
        parts.append(_elapsed_mark(elapsed * target / domain, width, height))
    parts.append("</svg>")
    return "".join(parts)


def split_bar(shared: int, withheld: int, domain: int, width: int = 260, height: int = 14,
              label: str = "") -> str:
    """Shared against withheld cases, on a common scale `domain` (the largest dataset)."""
    domain = max(domain, shared + withheld, 1)
    ws = shared / domain * width
    ww = withheld / domain * width
    return (f'<svg class="bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{escape(label)}">'
            f'<rect x="0" y="2" width="{width}" height="{height - 4}" rx="2" fill="{TRACK}"/>'
            f'<rect x="0" y="2" width="{_num(ws)}" height="{height - 4}" fill="{SHARED}"/>'
            f'<rect x="{_num(ws)}" y="2" width="{_num(ww)}" height="{height - 4}" fill="{WITHHELD}"/>'
            "</svg>")


def _elapsed_mark(elapsed: float | None, width: int, height: int) -> str:
    if elapsed is None:
        return ""
    x = min(max(elapsed, 0.0), 1.0) * width
    x = min(max(x, 1.0), width - 1.0)
    return f'<line x1="{_num(x)}" y1="0" x2="{_num(x)}" y2="{height}" stroke="{ELAPSED}" stroke-width="2"/>'


def trend_chart(points: list[tuple[dt.datetime, float, float | None]], width: int = 760,
                height: int = 260) -> str:
    """Overall achievement (and the elapsed ratio, dashed) over snapshot dates.

    `points` are (snapshot_at, achievement, elapsed_ratio), sorted by time. A single snapshot (or
    several taken at the same instant) is drawn as one labelled point in the middle.
    """
    left, right, top, bottom = 56, 44, 16, 40
    pw, ph = width - left - right, height - top - bottom
    ymax = max([1.0] + [p[1] for p in points] + [p[2] for p in points if p[2] is not None])
    ymax = (int(ymax * 100 + 19) // 20) * 20 / 100 if ymax > 1.0 else 1.0

    def y(v: float) -> float:
        return top + ph - v / ymax * ph

    t0, t1 = points[0][0], points[-1][0]
    span = (t1 - t0).total_seconds()

    def x(t: dt.datetime) -> float:
        return left + pw / 2 if span <= 0 else left + (t - t0).total_seconds() / span * pw

    out = [f'<svg class="trend" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'role="img" aria-label="Overall achievement over time">']
    step = 0.2 if ymax <= 1.2 else 0.5
    v = 0.0
    while v <= ymax + 1e-9:
        yy = y(v)
        out.append(f'<line x1="{left}" y1="{_num(yy)}" x2="{left + pw}" y2="{_num(yy)}" stroke="#e3e7eb"/>'
                   f'<text x="{left - 6}" y="{_num(yy + 4)}" text-anchor="end" class="axis">{v * 100:.0f}%</text>')
        v = round(v + step, 6)
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#888"/>')
    # x labels: first, last, and (when they differ) up to three in between
    labels = [points[0][0]] if span <= 0 else [t0 + (t1 - t0) * i / 4 for i in range(5)]
    for t in labels:
        out.append(f'<text x="{_num(x(t))}" y="{top + ph + 18}" text-anchor="middle" class="axis">'
                   f'{t:%Y-%m-%d}</text>')
    if span > 0:
        ach = " ".join(f"{_num(x(t))},{_num(y(a))}" for t, a, _ in points)
        out.append(f'<polyline points="{ach}" fill="none" stroke="{ACHIEVED}" stroke-width="2.5"/>')
        el = [(t, e) for t, _, e in points if e is not None]
        if len(el) >= 2:
            pts = " ".join(f"{_num(x(t))},{_num(y(e))}" for t, e in el)
            out.append(f'<polyline points="{pts}" fill="none" stroke="{ELAPSED}" stroke-width="1.5" '
                       'stroke-dasharray="5 4"/>')
    for i, (t, a, _) in enumerate(points):
        out.append(f'<circle data-testid="trend-point-{i}" data-value="{a * 100:.1f}%" cx="{_num(x(t))}" '
                   f'cy="{_num(y(a))}" r="4" fill="{ACHIEVED}"><title>{t:%Y-%m-%d %H:%M}: '
                   f'{a * 100:.1f}%</title></circle>')
    t, a, _ = points[-1]
    out.append(f'<text x="{_num(min(x(t), left + pw - 4))}" y="{_num(y(a) - 10)}" '
               f'text-anchor="{"middle" if span <= 0 else "end"}" class="pointlabel">{a * 100:.1f}%</text>')
    out.append("</svg>")
    return "".join(out)
