"""Scan a DICOM file: every element at every depth, private ones and the file meta included.

Only the header is examined (Pixel Data and other bulk values above `BULK_LIMIT` are not read;
burned-in text in pixels is the de-identifier's Clean Pixel Data job and is not checked here).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from medlake.checker.sink import Sink

TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
                      "UR", "UT"})
BYTES_VRS = frozenset({"UN", "OB", "OB or OW", "OW or OB"})
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
BIRTH_DATE = 0x00100030
BULK_LIMIT = 1 << 20     # bytes; larger OB/UN values (pixel-like data) are not decoded as text
HEAD_BYTES = 1 << 16     # read first; most headers end well inside it


class PrivateAllowList:
    """Private elements that may stay: a creator name (its whole block), (creator, element byte)
    or (creator, group, element byte), e.g. ("GEMS_PARM_01", 0x0043, 0x39)."""

    def __init__(self, entries: Iterable = ()):
        self.creators: set[str] = set()
        self.elements: set[tuple] = set()
        self.creator_of_element: set[str] = set()
        for e in entries:
            if isinstance(e, str):
                self.creators.add(e.strip())
            else:
                e = tuple(e)
                creator = str(e[0]).strip()
                self.creator_of_element.add(creator)
                if len(e) == 2:
                    self.elements.add((creator, None, int(e[1]) & 0xFF))
                else:
                    self.elements.add((creator, int(e[1]), int(e[2]) & 0xFF))

    def element(self, creator: str | None, group: int, elem: int) -> bool:
        if creator is None:
            return False
        creator = creator.strip()
        if creator in self.creators:
            return True
        off = elem & 0xFF
        return (creator, None, off) in self.elements or (creator, group, off) in self.elements

    def creator(self, creator: str | None) -> bool:
        if creator is None:
            return False
        creator = creator.strip()
        return creator in self.creators or creator in self.creator_of_element


def _texts(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (MultiValue, list, tuple)):
        out: list[str] = []
        for v in value:
            out += _texts(v)
        return out
    if isinstance(value, PersonName):
        return [str(value)]
    if isinstance(value, bytes):
        return []
    return [str(value)]


def _creator_text(ds: Dataset, group: int, elem: int) -> str | None:
    try:
        c = ds.get_item((group << 16) | (elem >> 8))
    except Exception:
        return None
    if c is None:
        return None
    v = c.value
    if isinstance(v, bytes):
        v = v.decode("latin-1", errors="replace")
    if isinstance(v, (list, MultiValue)):
        v = "\\".join(map(str, v))
    return None if v is None else str(v).strip()


def _tag_str(group: int, elem: int) -> str:
    return f"({group:04X},{elem:04X})"


# Character sets a plain codec decodes exactly as pydicom would; other sets (ISO 2022 code
# extensions) go through pydicom's conversion.
_SIMPLE_CHARSETS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


def _codec(ds: Dataset, inherited: str | None) -> str | None:
    raw = ds._dict.get(0x00080005)
    if raw is None:
        return inherited
    v = raw.value
    text = v.decode("ascii", "replace") if isinstance(v, bytes) else "\\".join(v) if isinstance(v, (list, MultiValue)) \
        else str(v or "")
    return _SIMPLE_CHARSETS.get(text.strip(" \0").split("\\")[-1].strip())


def _walk(ds: Dataset, prefix: str, sink: Sink, allow: PrivateAllowList, codec: str | None = "ascii") -> None:
    codec = _codec(ds, codec)
    for tag in list(ds.keys()):
        tag = int(tag)
        group, elem = tag >> 16, tag & 0xFFFF
        if tag in PIXEL_TAGS:
            continue
        private = group % 2 == 1
        creator: str | None = None
        if private and elem >= 0x1000:
            creator = _creator_text(ds, group, elem)
            if creator is not None:
                shown = sink.safe(creator, "creator")
                seg = (f'({group:04X},"{shown}",{elem & 0xFF:02X})' if shown == creator
                       else f"({group:04X},{elem:04X})")
            else:
                seg = _tag_str(group, elem)
        elif private:
            seg = _tag_str(group, elem)
        else:
            try:
                seg = pydicom.datadict.keyword_for_tag(tag) or _tag_str(group, elem)
            except Exception:
                seg = _tag_str(group, elem)
        loc = f"{prefix}.{seg}" if prefix else seg

        if private:
            if 0x0010 <= elem <= 0x00FF:                     # a private creator element
                c = _creator_text(ds, group, elem << 8)
                if not allow.creator(c):
                    sink.add(loc, "private_tag")
            elif not allow.element(creator, group, elem):
                sink.add(loc, "private_tag")

        # Large values are skipped before pydicom reads or converts them.
        try:
            raw = ds.get_item(tag)
        except Exception:
            raw = None
        if isinstance(raw, RawDataElement) and raw.length not in (None, 0xFFFFFFFF) and raw.length > BULK_LIMIT \
                and raw.VR not in ("SQ",):
            continue
        if (codec is not None and isinstance(raw, RawDataElement) and raw.VR in TEXT_VRS
                and isinstance(raw.value, bytes)):
            # Decoding the bytes here costs a fraction of pydicom's value conversion, which
            # dominated the scan of a large batch.
            texts = [t.strip(" \0") for t in raw.value.decode(codec, "replace").split("\\")]
            if tag == BIRTH_DATE and any(texts):
                sink.add(loc, "birth_date")
            for t in texts:
                if t:
                    sink.check(loc, t)
            continue
        try:
            el: DataElement = ds[tag]
        except Exception:
            # Unconvertible (bad VR, bad charset): look at the raw bytes instead.
            if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
                sink.check_bytes(loc, raw.value)
            continue
        vr = el.VR
        if vr == "SQ":
            for i, item in enumerate(el.value or []):
                _walk(item, f"{loc}[{i}]", sink, allow, codec)
            continue
        if tag == BIRTH_DATE and el.value not in (None, "", b""):
            sink.add(loc, "birth_date")
        value = el.value
        if isinstance(value, bytes):
            if vr in BYTES_VRS or vr in TEXT_VRS or private:
                if len(value) <= BULK_LIMIT:
                    sink.check_bytes(loc, value)
            continue
        if vr in TEXT_VRS or vr in BYTES_VRS or private:
            for t in _texts(value):
                sink.check(loc, t)


def scan_dicom_into(path, sink: Sink, allow: PrivateAllowList) -> None:
    from medlake.checker.rawdicom import NeedWholeFile, scan_raw

    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fd = fh.fileno()
        # The header is read, the pixel data stepped over: a scan costs a page or two per image.
        head = os.pread(fd, HEAD_BYTES, 0)
        try:
            if scan_raw(head, sink, allow, size, lambda off, n: os.pread(fd, n, off)):
                return
        except NeedWholeFile:
            if scan_raw(os.pread(fd, size, 0), sink, allow):
                return
    # Values above 16 KiB (pixel data, mostly) stay on disk until asked for: the walk asks for the
    # ones it decodes and skips the rest, so a scan reads headers, not images.
    ds = pydicom.dcmread(str(path), force=True, defer_size=16384)
    pre = getattr(ds, "preamble", None)
    sink.batch()
    try:
        if pre and any(pre):
            sink.check_bytes("preamble", bytes(pre))
        meta = getattr(ds, "file_meta", None)
        if meta is not None and len(meta):
            _walk(meta, "", sink, allow)
        _walk(ds, "", sink, allow)
    finally:
        sink.flush()
