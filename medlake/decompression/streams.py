"""Deflate, zlib and gzip streams decoded a bounded piece at a time, counted against a limit.

zlib.decompress and gzip.decompress return everything at once: a megabyte of zeros becomes a
gigabyte in one call. Here every call to the decompressor asks for at most one output chunk, so
memory stays at a chunk whatever the stream holds, and decoding stops the moment the count passes
the limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from medlake.decompression.limits import DecompressionLimit, human, max_decoded_bytes

RAW_DEFLATE = -15
GZIP = 31
CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"

Read = Callable[[int], bytes]


class CorruptStream(ValueError):
    """The compressed stream is not valid (bad data, bad checksum, cut short, trailing garbage)."""


class Inflater:
    """A readable view of the decompressed stream of `read` (a compressed file's read method).

    read(n) returns up to n decoded bytes (b"" at the end). Decoding more than `limit` bytes in all
    raises DecompressionLimit, naming `what`. A gzip stream may hold several members, as
    gzip.decompress allows."""

    def __init__(self, read: Read, wbits: int, what: str, limit: int | None = None):
        self._read = read
        self._wbits = wbits
        self._d = zlib.decompressobj(wbits)
        self._pending = b""
        self._input_done = False
        self.what = what
        self.limit = max_decoded_bytes() if limit is None else limit
        self.decoded = 0
        self.complete = False

    def read(self, n: int) -> bytes:
        out, got = [], 0
        while got < n:
            piece = self._next(min(CHUNK, n - got))
            if not piece:
                break
            out.append(piece)
            got += len(piece)
        return b"".join(out)

    def skip(self, n: int) -> int:
        """Decode and drop n bytes (fewer at the end); returns how many were dropped."""
        dropped = 0
        while dropped < n:
            piece = self._next(min(CHUNK, n - dropped))
            if not piece:
                break
            dropped += len(piece)
        return dropped

    def drain(self) -> int:
        """Decode the rest, keeping nothing; returns the bytes decoded in all."""
        while self._next(CHUNK):
            pass
        return self.decoded

    def _next(self, n: int) -> bytes:
        while not self.complete:
            if not self._pending and not self._input_done:
                self._pending = self._read(CHUNK)
                self._input_done = not self._pending
            try:
                piece = self._d.decompress(self._pending, n)
            except zlib.error as e:
                raise CorruptStream(f"the compressed stream of {self.what} is not valid ({e})") from None
            self._pending = self._d.unconsumed_tail
            if piece:
                self.decoded += len(piece)
                if self.decoded > self.limit:
                    raise DecompressionLimit(f"{self.what} decodes to more than the limit of {human(self.limit)}")
                return piece
            if self._d.eof:
                self._next_member()
            elif self._input_done and not self._pending:
                raise CorruptStream(f"the compressed stream of {self.what} is cut short")
        return b""

    def _next_member(self) -> None:
        rest = self._d.unused_data + self._pending
        if self._wbits != GZIP:
            self.complete = True
            return
        while len(rest) < 2 and not self._input_done:
            more = self._read(CHUNK)
            self._input_done = not more
            rest += more
        if not rest or (not rest.strip(b"\0") and self._input_done):
            self.complete = True
        elif rest.startswith(_GZIP_MAGIC):
            self._d = zlib.decompressobj(GZIP)
            self._pending = rest
        else:
            raise CorruptStream(f"{self.what} has data after its gzip stream that is not gzip")


def reader_of(data) -> Read:
    """A read(n) over bytes already in memory, without copying them."""
    view = memoryview(data)
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        piece = view[pos:pos + n]
        pos += len(piece)
        return bytes(piece)

    return read


def inflated_size(read: Read, wbits: int, what: str, limit: int | None = None) -> int:
    """Bytes the stream decodes to, counted without keeping them; DecompressionLimit past the limit."""
    return Inflater(read, wbits, what, limit).drain()


__all__ = ["CHUNK", "GZIP", "RAW_DEFLATE", "CorruptStream", "Inflater", "inflated_size", "reader_of"]
