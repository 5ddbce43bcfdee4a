"""Whole-slide images (.svs, .ndpi, .tif/.tiff): drop label and macro images and identifying tags.

The output is written tag by tag from an allow-list, so anything not known to be structural
(dates, software, operator, host, NDPI private tags, XMP, free-text descriptions) is left behind
without having to be recognised. Tiles and strips are copied byte for byte: no decode, no
re-encode, no generation loss, and no codec needed for JPEG / JPEG 2000 tiles.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import tifffile

from medlake.deid.errors import DeidError


class WsiError(DeidError):
    """A slide that cannot be rewritten safely; the caller quarantines it with `reason`."""

    @property
    def reason(self) -> str:
        return self.code


@dataclass
class WsiResult:
    pages_in: int
    pages_out: int
    levels: list[tuple[int, int]]                       # (width, height) of every kept page, in order
    dropped: list[str] = field(default_factory=list)    # "label" / "macro" per dropped page
    tags_removed: int = 0
    bigtiff: bool = False


# Structural tags only; strip/tile offsets and byte counts are rebuilt, ImageDescription rewritten.
KEEP_TAGS = frozenset({
    254, 256, 257, 258, 259, 262, 266, 274, 277, 278, 282, 283, 284, 296, 317, 322, 323, 338, 339,
    347, 530, 531, 532, 32997, 32998, 34675,
})
OFFSETS = {273: 279, 324: 325}          # offsets tag -> byte counts tag
DESCRIPTION = 270
NDPI_SOURCE_LENS = 65421                 # NDPI: magnification; -1 macro, -2 map

_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_GEOMETRY = re.compile(r"^\d+x\d+( \[\d+,\d+ \d+x\d+\])?( \(\d+x\d+\))?( -> \d+x\d+)?"
                       r"( (RAW|JPEG/RGB|JPEG/YCC|JPEG|J2K/KDU|J2K/YUV16|J2K)( Q=\d+)?)?$")
_APERIO_KEYS = ("AppMag", "MPP", "OriginalWidth", "OriginalHeight")


def _kind(page, index: int, aperio: bool, level0) -> str | None:
    """'label' or 'macro' for an associated image, None for a pyramid level or thumbnail."""
    desc = (page.description or "").lower()
    for word in ("label", "macro", "barcode"):
        if re.search(rf"\b{word}\b", desc):
            return "macro" if word == "macro" else "label"
    if page.subfiletype & 8:            # Aperio writes 9 for the macro
        return "macro"
    lens = page.tags.get(NDPI_SOURCE_LENS)
    if lens is not None:
        try:
            if float(lens.value) <= 0:
                return "macro"
        except (TypeError, ValueError):
            return "macro"
    if index == 0 or page.is_tiled:
        return None
    if aperio and index >= 2:           # SVS: level 0, thumbnail, tiled levels, then label/macro strips
        return "label"
    a0 = level0.imagewidth / max(1, level0.imagelength)
    a = page.imagewidth / max(1, page.imagelength)
    if abs(a - a0) / a0 > 0.1:          # not a downsample of the slide: a photograph of the glass
        return "macro"
    return None


def _description(desc: str, aperio: bool) -> str | None:
    """Scanner geometry only: the Aperio header line, the size line and a few optical keys."""
    if not aperio:
        return None
    lines = desc.split("\n", 1)
    head = lines[0].strip() if lines[0].startswith("Aperio") else "Aperio"
    head = re.sub(r"[^A-Za-z0-9 .\-]", "", head)[:60]
    rest = lines[1] if len(lines) > 1 else ""
    parts = [p.strip() for p in rest.split("|")]
    out = []
    if parts and _GEOMETRY.match(parts[0]):
        out.append(parts[0])
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k.strip() in _APERIO_KEYS and re.fullmatch(r"\s*[0-9.]+\s*", v):
            out.append(f"{k.strip()} = {v.strip()}")
    return head + "\n" + "|".join(out) if out else head


def strip_label_and_macro(src: Path, dst: Path) -> WsiResult:
    """Rewrite the TIFF at src to dst without label/macro pages and identifying metadata.

    Every pyramid level (and an SVS thumbnail) is kept with its tiles copied unchanged.
    Raises WsiError when the file is not a readable TIFF or uses SubIFDs (pyramids not in the
    main IFD chain, which this writer does not rebuild)."""
    src, dst = Path(src), Path(dst)
    try:
        tif = tifffile.TiffFile(src)
    except Exception as exc:  # noqa: BLE001 - any parse failure means the same thing here
        raise WsiError("unreadable_wsi", f"{type(exc).__name__}: {exc}"[:300]) from None
    with tif:
        pages = list(tif.pages)
        if not pages:
            raise WsiError("unreadable_wsi", "no image in file")
        bo = tif.byteorder
        level0 = pages[0]
        aperio = (level0.description or "").startswith("Aperio")
        plan, dropped, removed = [], [], 0
        for i, page in enumerate(pages):
            if 330 in page.tags:
                raise WsiError("unsupported_wsi", "SubIFD pyramids are not supported")
            kind = _kind(page, i, aperio, level0)
            if kind:
                dropped.append(kind)
                continue
            tags = {}
            for tag in page.tags.values():
                if tag.code in KEEP_TAGS:
                    size = _TYPE_SIZE.get(tag.dtype)
                    if size is None:
                        removed += 1
                        continue
                    tif.filehandle.seek(tag.valueoffset)
                    tags[tag.code] = (tag.dtype, tag.count, tif.filehandle.read(size * tag.count))
                elif tag.code not in OFFSETS and tag.code not in OFFSETS.values():
                    removed += 1
            desc = _description(page.description or "", aperio)
            if desc is not None:
                raw = desc.encode("ascii", "ignore") + b"\0"
                tags[DESCRIPTION] = (2, len(raw), raw)
            offs_tag = 324 if page.is_tiled else 273
            plan.append((page, tags, offs_tag))
        total = sum(int(sum(p.databytecounts)) for p, _, _ in plan)
        bigtiff = tif.is_bigtiff or total > 2 ** 32 - 2 ** 26
        levels = [(p.imagewidth, p.imagelength) for p, _, _ in plan]
        dst.parent.mkdir(parents=True, exist_ok=True)
        _write(tif.filehandle, plan, dst, bo, bigtiff)
    return WsiResult(len(pages), len(plan), levels, dropped, removed, bigtiff)


def _write(fh, plan, dst: Path, bo: str, bigtiff: bool) -> None:
    off_fmt, off_type = ("Q", 16) if bigtiff else ("I", 4)
    count_fmt, inline = ("Q", 8) if bigtiff else ("H", 4)
    with open(dst, "wb") as out:
        if bigtiff:
            out.write((b"II" if bo == "<" else b"MM") + struct.pack(bo + "HHHQ", 43, 8, 0, 0))
        else:
            out.write((b"II" if bo == "<" else b"MM") + struct.pack(bo + "HI", 42, 0))
        prev_next = 4 if not bigtiff else 8       # where the pointer to the next IFD is written
        for page, tags, offs_tag in plan:
            offsets, counts = [], []
            for o, n in zip(page.dataoffsets, page.databytecounts):
                if not n:
                    offsets.append(0)
                    counts.append(0)
                    continue
                offsets.append(out.tell())
                fh.seek(o)
                remaining = int(n)
                while remaining:
                    chunk = fh.read(min(remaining, 1 << 24))
                    if not chunk:
                        raise WsiError("truncated_wsi", "tile or strip runs past the end of the file")
                    out.write(chunk)
                    remaining -= len(chunk)
                counts.append(int(n))
                if out.tell() % 2:
                    out.write(b"\0")
            tags = dict(tags)
            tags[offs_tag] = (off_type, len(offsets), struct.pack(bo + off_fmt * len(offsets), *offsets))
            tags[OFFSETS[offs_tag]] = (off_type, len(counts), struct.pack(bo + off_fmt * len(counts), *counts))
            # Values that do not fit in an entry go before the IFD.
            placed = {}
            for code in sorted(tags):
                typ, cnt, raw = tags[code]
                if len(raw) > inline:
                    placed[code] = out.tell()
                    out.write(raw)
                    if out.tell() % 2:
                        out.write(b"\0")
            ifd = out.tell()
            out.seek(prev_next)
            out.write(struct.pack(bo + off_fmt, ifd))
            out.seek(ifd)
            out.write(struct.pack(bo + count_fmt, len(tags)))
            for code in sorted(tags):
                typ, cnt, raw = tags[code]
                out.write(struct.pack(bo + "HH" + ("Q" if bigtiff else "I"), code, typ, cnt))
                if code in placed:
                    out.write(struct.pack(bo + off_fmt, placed[code]))
                else:
                    out.write(raw.ljust(inline, b"\0"))
            prev_next = out.tell()
            out.write(struct.pack(bo + off_fmt, 0))
