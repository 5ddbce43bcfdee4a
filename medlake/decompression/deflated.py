"""Deflated Explicit VR Little Endian (1.2.840.10008.1.2.1.99): the data set after the meta header
is one deflate stream, pixel data included.

pydicom inflates that stream in one call, whatever it holds. So before pydicom sees such a file
its stream is inflated here once, a chunk at a time and counted, and refused when it passes the
limit; only then does pydicom read it (holding at most the limit).
"""

from __future__ import annotations

import io
import os
from struct import unpack_from

import pydicom

from medlake.decompression.streams import RAW_DEFLATE, inflated_size

DEFLATED = "1.2.840.10008.1.2.1.99"
_FIRST = 16 << 10  # a meta header is a few hundred bytes
_HEAD = 1 << 20  # one that runs past this is not followed
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


class MetaUnfollowable(ValueError):
    """The file meta information could not be walked far enough to tell the transfer syntax."""


class _NeedMore(Exception):
    pass


def deflate_start(head: bytes, whole: bool = True) -> int | None:
    """Offset of the deflate stream when `head` (a Part-10 file's first bytes; `whole` when it is
    the whole file) declares the deflated transfer syntax; None for any other file."""
    if len(head) < 132 or head[128:132] != b"DICM":
        return None
    pos, syntax = 132, None
    while True:
        if pos + 8 > len(head):
            if not whole:
                raise _NeedMore
            break
        group, element = unpack_from("<HH", head, pos)
        if group != 0x0002:
            break
        if head[pos + 4:pos + 6] in _LONG_VRS:
            length, start = unpack_from("<I", head, pos + 8)[0], pos + 12
        else:
            length, start = unpack_from("<H", head, pos + 6)[0], pos + 8
        if element == 0x0010:
            syntax = head[start:start + length].rstrip(b"\0 ").decode("ascii", "replace")
        pos = start + length
    return pos if syntax == DEFLATED else None


def check_deflated(fh) -> None:
    """Count what a deflated file's data set inflates to (DecompressionLimit past the limit); the
    file position is left where it was. Files of other transfer syntaxes are not read past their
    meta header."""
    where = fh.tell()
    try:
        head = fh.read(_FIRST)
        try:
            start = deflate_start(head, whole=len(head) < _FIRST)
        except _NeedMore:
            head += fh.read(_HEAD - len(head))
            try:
                start = deflate_start(head, whole=len(head) < _HEAD)
            except _NeedMore:
                raise MetaUnfollowable("the file meta information runs past its first MiB") from None
        if start is not None:
            fh.seek(where + start)
            inflated_size(fh.read, RAW_DEFLATE, "the deflated data set")
    finally:
        fh.seek(where)


def dcmread(src, **kwargs) -> pydicom.FileDataset:
    """pydicom.dcmread of a path, bytes or seekable file, with a deflated data set counted first."""
    if isinstance(src, bytes | bytearray | memoryview):
        src = io.BytesIO(bytes(src))
    if isinstance(src, str | os.PathLike):
        with open(src, "rb") as fh:
            check_deflated(fh)
        return pydicom.dcmread(src, **kwargs)
    check_deflated(src)
    return pydicom.dcmread(src, **kwargs)


__all__ = ["DEFLATED", "MetaUnfollowable", "check_deflated", "dcmread", "deflate_start"]
