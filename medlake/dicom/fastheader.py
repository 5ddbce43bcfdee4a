"""A lean walker over the header of a little-endian DICOM Part-10 file.

pydicom builds a full Dataset even when the pixel data is skipped; the catalogue needs about
twenty-five values, and on 512x512 CT the generic reader costs more than hashing the file. This walker
steps over elements by their lengths and keeps only the wanted ones. Anything unusual (big endian,
deflate, a structure it does not follow) returns None and the caller uses pydicom instead, so the
fast path can only be faster, never less correct; tests compare the two on every synthetic object.
"""

from __future__ import annotations

from struct import error as StructError
from struct import unpack_from

IMPLICIT_LE = "1.2.840.10008.1.2"
_NOT_LITTLE_EXPLICIT = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"}  # deflated, big endian
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_MAX_DEPTH = 32


TRUNCATED = "truncated"  # scan() result: well-formed elements up to a value that runs past the end


class _Unfollowable(Exception):
    """The walker cannot follow this file; pydicom will."""


def scan(data: bytes, wanted: frozenset[int]):
    """(meta values, dataset values, pixel data offset) for the wanted tags; None to fall back to
    pydicom; TRUNCATED when a value runs past the end of the file (pydicom would read it short).

    Values are the raw bytes of top-level elements only.
    """
    try:
        if data[128:132] != b"DICM":
            return None
        meta: dict[int, bytes] = {}
        pos = 132
        n = len(data)
        while pos + 8 <= n:
            group = unpack_from("<H", data, pos)[0]
            if group != 0x0002:
                break
            tag, pos, length, _vr = _explicit_header(data, pos)
            if length == _UNDEFINED:
                return None
            meta[tag] = data[pos:pos + length]
            pos += length
        ts = meta.get(0x00020010, b"").rstrip(b"\0 ").decode("ascii", "replace")
        if not ts or ts in _NOT_LITTLE_EXPLICIT:
            return None
        implicit = ts == IMPLICIT_LE
        values: dict[int, bytes] = {}
        pixel_offset = None
        while pos + 8 <= n:
            tag = (unpack_from("<H", data, pos)[0] << 16) | unpack_from("<H", data, pos + 2)[0]
            if tag in _PIXEL_TAGS:
                pixel_offset = pos
                break
            if tag >> 16 == 0xFFFE:
                return None
            start = pos
            tag, pos, length, is_seq = _element_header(data, pos, implicit)
            if length == _UNDEFINED:
                if not is_seq:
                    return None
                pos = _skip_sequence(data, pos, implicit, 0)
                continue
            if pos + length > n:
                return TRUNCATED
            if tag in wanted:
                values[tag] = data[pos:pos + length]
            pos += length
            if pos <= start:
                return None
        if pixel_offset is None and pos != n:
            return TRUNCATED
        return meta, values, pixel_offset
    except (_Unfollowable, IndexError, ValueError, StructError):
        return None


def _element_header(data: bytes, pos: int, implicit: bool) -> tuple[int, int, int, bool]:
    """(tag, value position, length, is a sequence) of the element at `pos`."""
    if implicit:
        tag = (unpack_from("<H", data, pos)[0] << 16) | unpack_from("<H", data, pos + 2)[0]
        length = unpack_from("<I", data, pos + 4)[0]
        return tag, pos + 8, length, length == _UNDEFINED
    tag, pos, length, vr = _explicit_header(data, pos)
    return tag, pos, length, vr == b"SQ" or (vr == b"UN" and length == _UNDEFINED)


def _explicit_header(data: bytes, pos: int) -> tuple[int, int, int, bytes]:
    tag = (unpack_from("<H", data, pos)[0] << 16) | unpack_from("<H", data, pos + 2)[0]
    vr = data[pos + 4:pos + 6]
    if vr in _LONG_VRS:
        return tag, pos + 12, unpack_from("<I", data, pos + 8)[0], vr
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise _Unfollowable("not an explicit VR")
    return tag, pos + 8, unpack_from("<H", data, pos + 6)[0], vr


def _skip_sequence(data: bytes, pos: int, implicit: bool, depth: int) -> int:
    """Position just after an undefined-length sequence starting at `pos` (its first item)."""
    if depth > _MAX_DEPTH:
        raise _Unfollowable("sequences nested too deep")
    n = len(data)
    while pos + 8 <= n:
        tag = (unpack_from("<H", data, pos)[0] << 16) | unpack_from("<H", data, pos + 2)[0]
        length = unpack_from("<I", data, pos + 4)[0]
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Unfollowable("expected a sequence item")
        if length != _UNDEFINED:
            pos += length
            continue
        pos = _skip_item(data, pos, implicit, depth + 1)
    raise _Unfollowable("sequence runs past the end")


def _skip_item(data: bytes, pos: int, implicit: bool, depth: int) -> int:
    n = len(data)
    while pos + 8 <= n:
        tag = (unpack_from("<H", data, pos)[0] << 16) | unpack_from("<H", data, pos + 2)[0]
        if tag == _ITEM_END:
            return pos + 8
        tag, pos, length, is_seq = _element_header(data, pos, implicit)
        if length == _UNDEFINED:
            if not is_seq:
                raise _Unfollowable("undefined length outside a sequence")
            pos = _skip_sequence(data, pos, implicit, depth + 1)
        else:
            pos += length
    raise _Unfollowable("item runs past the end")
