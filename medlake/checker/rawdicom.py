"""A byte-level walk over a little-endian DICOM file for the checker: every element, every depth.

The pydicom walk in dicom.py builds a Dataset per item and converts values it only needs as text;
on a batch of thousands of slices that made the check cost as much as the de-identification it
checks. This walk reads the same elements straight from the bytes. It is the checker's own code
(the checker shares nothing with the de-identifier or ingestion) and it gives up (returns False)
on anything it does not follow, so the caller can use the pydicom walk instead.
"""

from __future__ import annotations

from functools import lru_cache
from struct import error as StructError
from struct import unpack_from

from pydicom.datadict import dictionary_VR, keyword_for_tag

from medlake.checker.sink import Sink

IMPLICIT_LE = "1.2.840.10008.1.2"
_FOLLOWED_SYNTAX_EXCLUDED = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"}  # deflated, big endian
_LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
_BYTES_VRS = {"UN", "OB"}
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_BIRTH_DATE = 0x00100030
_CHARSET = 0x00080005
_SIMPLE_CHARSETS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}
_MAX_DEPTH = 64
BULK_LIMIT = 1 << 20


class _GiveUp(Exception):
    pass


class NeedWholeFile(Exception):
    """The header runs past the bytes given; scan again with the whole file."""


@lru_cache(maxsize=4096)
def _keyword(tag: int) -> str:
    try:
        return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    except Exception:  # noqa: BLE001
        return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@lru_cache(maxsize=4096)
def _dict_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        return "UN"


def scan_raw(data: bytes, sink: Sink, allow, size: int | None = None, read_at=None) -> bool:
    """Scan `data` into `sink`; False (and nothing added) when the layout is not followed.

    `data` may be only the start of a file of `size` bytes: the walk then steps over the pixel data
    with `read_at(offset, n)` and reads what follows it, and raises NeedWholeFile when anything
    else runs past `data`.
    """
    if len(data) < 132 or data[128:132] != b"DICM":  # bytes or an mmap
        return False
    probe = Sink(sink.index, sink.object)
    walker = _Walker(data, probe, allow)
    walker.size = len(data) if size is None else size
    walker.read_at = read_at
    try:
        if any(data[:128]):
            probe.check_bytes("preamble", bytes(data[:128]))
        pos = walker.meta()
        if walker.ts in _FOLLOWED_SYNTAX_EXCLUDED or not walker.ts:
            return False
        walker.implicit = walker.ts == IMPLICIT_LE
        walker.level(pos, None, "", "ascii", 0)
    except (_GiveUp, StructError, IndexError, ValueError):
        if walker.size > len(data) and walker.buf is data:
            raise NeedWholeFile from None  # maybe only cut short by the partial read
        return False
    # One search over every text value of the object; only a hit pays for locating it.
    texts = walker.texts
    if texts and sink.index.find("\n".join(t for _, t in texts)):
        for loc, text in texts:
            for t in text.split("\\"):
                t = t.strip(" \0")
                if t:
                    probe.check(_location(loc), t)
    for f in probe.findings:
        sink.add(f.location, f.identifier_kind)
    return True


def _location(loc) -> str:
    """Locations are kept as (parent, tag, creator shown) until a finding needs them as text."""
    if isinstance(loc, str):
        return loc
    parent, tag, creator, index = loc
    group, el = tag >> 16, tag & 0xFFFF
    if group & 1:
        seg = f'({group:04X},"{creator}",{el & 0xFF:02X})' if creator is not None else f"({group:04X},{el:04X})"
    else:
        seg = _keyword(tag)
    text = f"{_location(parent)}.{seg}" if parent else seg
    return f"{text}[{index}]" if index is not None else text


class _Walker:
    def __init__(self, buf: bytes, sink: Sink, allow):
        self.buf, self.sink, self.allow = buf, sink, allow
        self.ts = ""
        self.implicit = False
        self.texts: list[tuple[object, str]] = []
        self.size = len(buf)
        self.read_at = None

    def meta(self) -> int:
        buf, pos = self.buf, 132
        while pos + 8 <= len(buf) and unpack_from("<H", buf, pos)[0] == 0x0002:
            tag, vr, length, start = self._explicit(pos)
            value = buf[start:start + length]
            if tag == 0x00020010:
                self.ts = value.decode("ascii", "replace").strip(" \0")
            self._value(tag, vr.decode(), value, ("", tag, None, None), "ascii", None)
            pos = start + length
        return pos

    def _explicit(self, pos: int) -> tuple[int, bytes, int, int]:
        buf = self.buf
        group, el = unpack_from("<HH", buf, pos)
        vr = buf[pos + 4:pos + 6]
        if vr in _LONG:
            return (group << 16) | el, vr, unpack_from("<I", buf, pos + 8)[0], pos + 12
        if len(vr) != 2 or not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
            raise _GiveUp
        return (group << 16) | el, vr, unpack_from("<H", buf, pos + 6)[0], pos + 8

    def level(self, pos: int, end: int | None, prefix, codec: str | None, depth: int) -> int:
        """Elements of one data set from `pos` until `end` or an item delimiter; returns the position after."""
        if depth > _MAX_DEPTH:
            raise _GiveUp
        buf = self.buf
        limit = len(buf) if end is None else end
        creators: dict[tuple[int, int], str] = {}
        while pos + 8 <= limit:
            group, el = unpack_from("<HH", buf, pos)
            tag = (group << 16) | el
            if tag == _ITEM_END:
                return pos + 8
            if group == 0xFFFE:
                raise _GiveUp
            if self.implicit:
                length = unpack_from("<I", buf, pos + 4)[0]
                start = pos + 8
                vr = "SQ" if length == _UNDEFINED else _dict_vr(tag)
            else:
                tag, vr_b, length, start = self._explicit(pos)
                vr = vr_b.decode()
            private = group & 1
            creator = shown = None
            if private and el >= 0x1000:
                creator = creators.get((group, el >> 8))
                if creator is not None:
                    shown = self.sink.safe(creator, "creator")
                    shown = shown if shown == creator else None
            loc = (prefix, tag, shown, None)
            if private and not 0x10 <= el <= 0xFF and not self.allow.element(creator, group, el):
                self.sink.add(_location(loc), "private_tag")
            if tag in _PIXEL_TAGS and depth == 0 and self.size > len(buf):
                pos = self._past_pixels(start, length)
                buf, limit = self.buf, len(self.buf)
                continue
            if vr == "SQ" or (length == _UNDEFINED and vr in ("UN", "OB")):
                pos = self.sequence(start, None if length == _UNDEFINED else start + length, loc, codec, depth)
                continue
            if length == _UNDEFINED:
                raise _GiveUp
            if start + length > len(buf):
                if self.size > len(buf):
                    raise NeedWholeFile
                raise _GiveUp
            value = buf[start:start + length]
            pos = start + length
            if private and 0x10 <= el <= 0xFF:
                text = value.decode("latin-1").strip(" \0")
                creators[(group, el)] = text
                if not self.allow.creator(text):
                    self.sink.add(_location(loc), "private_tag")
            if tag == _CHARSET and not prefix:
                key = value.decode("ascii", "replace").strip(" \0").split("\\")[-1].strip()
                codec = _SIMPLE_CHARSETS.get(key)
            self._value(tag, vr, value, loc, codec, private)
        if end is not None and pos != end:
            raise _GiveUp
        return pos

    def _past_pixels(self, start: int, length: int) -> int:
        """Continue after the pixel data without reading it: returns the position in the new buffer."""
        if length == _UNDEFINED:  # encapsulated: hop over the fragments by their lengths
            off = start
            while True:
                head = self.read_at(off, 8) if off + 8 > len(self.buf) else self.buf[off:off + 8]
                if len(head) < 8:
                    raise _GiveUp
                group, el, n = unpack_from("<HHI", head)
                off += 8
                if (group, el) == (0xFFFE, 0xE0DD):
                    break
                if (group, el) != (0xFFFE, 0xE000) or n == _UNDEFINED:
                    raise _GiveUp
                off += n
        else:
            off = start + length
        if off > self.size:
            raise _GiveUp
        self.buf = self.read_at(off, self.size - off) if off >= len(self.buf) else self.buf[off:]
        return 0

    def sequence(self, pos: int, end: int | None, loc, codec: str | None, depth: int) -> int:
        buf = self.buf
        limit = len(buf) if end is None else end
        i = 0
        while pos + 8 <= limit:
            group, el = unpack_from("<HH", buf, pos)
            tag = (group << 16) | el
            length = unpack_from("<I", buf, pos + 4)[0]
            pos += 8
            if tag == _SEQ_END:
                return pos
            if tag != _ITEM:
                raise _GiveUp
            parent, tag_, shown, _ = loc
            pos = self.level(pos, None if length == _UNDEFINED else pos + length, (parent, tag_, shown, i), codec,
                             depth + 1)
            i += 1
        if end is None:
            raise _GiveUp
        return pos

    def _value(self, tag: int, vr: str, value: bytes, loc, codec: str | None, private) -> None:
        if tag in _PIXEL_TAGS or len(value) > BULK_LIMIT:
            return
        if tag == _BIRTH_DATE and value.strip(b" \0"):
            self.sink.add(_location(loc), "birth_date")
        if vr == "UI":
            # A UID is one token: an original UID survives whole or not at all (it is in the index).
            for uid in value.decode("ascii", "replace").split("\\"):
                for kind in self.sink.index.find_whole(uid.strip(" \0")):
                    self.sink.add(_location(loc), kind)
        elif vr in _TEXT_VRS and codec is not None:
            if value:
                self.texts.append((loc, value.decode(codec, "replace")))
        elif vr in _TEXT_VRS or vr in _BYTES_VRS or private:
            self.sink.check_bytes(_location(loc), value)
