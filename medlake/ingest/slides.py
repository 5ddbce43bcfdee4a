"""Whole-slide images (TIFF family: .ndpi, .svs, .tif): structure and case link, from tags only.

A slide carries no DICOM header, so EXPORT_FORMAT.md's case link (the study UID in cases.csv) is
read from the Aperio-style `|key = value` metadata of the first page's ImageDescription
(`StudyInstanceUID = ...`). Pixels are never decoded here.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import tifffile

_KEY_VALUE = re.compile(r"\|\s*([A-Za-z][A-Za-z0-9 _]*?)\s*=\s*([^|\n]*)")
_ASSOCIATED = ("label", "macro", "thumbnail")


@dataclass(frozen=True)
class SlideInfo:
    study_instance_uid: str | None
    width: int
    height: int
    levels: int
    has_label: bool
    has_macro: bool
    is_bigtiff: bool


class SlideProblem(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def read_slide(data: bytes | None, path: Path) -> SlideInfo:
    try:
        with tifffile.TiffFile(io.BytesIO(data) if data is not None else path) as tif:
            pages = list(tif.pages)
            if not pages:
                raise SlideProblem("wsi_unreadable", "the TIFF file has no pages")
            descriptions = [(getattr(p, "description", "") or "") for p in pages]
            first = pages[0]
            meta = dict((k.strip(), v.strip()) for k, v in _KEY_VALUE.findall(descriptions[0]))
            associated = [_associated_kind(d) for d in descriptions]
            levels = sum(1 for a in associated if a is None)
            return SlideInfo(
                study_instance_uid=meta.get("StudyInstanceUID") or None,
                width=int(first.shape[1]) if len(first.shape) > 1 else 0,
                height=int(first.shape[0]),
                levels=levels,
                has_label="label" in associated,
                has_macro="macro" in associated,
                is_bigtiff=bool(tif.is_bigtiff),
            )
    except SlideProblem:
        raise
    except Exception as e:  # noqa: BLE001 - any TIFF parse failure is a property of the file
        raise SlideProblem("wsi_unreadable", f"the whole-slide TIFF cannot be read ({type(e).__name__})") from None


def _associated_kind(description: str) -> str | None:
    # Aperio writes "...\nlabel 240x120" / "...\nmacro ..."; other writers put the word alone.
    words = description.lower().replace("\n", " ").split()
    for kind in _ASSOCIATED:
        if kind in words[:3] or any(w == kind for w in words[-3:]):
            return kind
    return None
