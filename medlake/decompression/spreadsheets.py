"""xlsx label sheets: a zip of XML that openpyxl loads whole.

Three checks before openpyxl opens the package, from the zip directory and then the streams:
  - the members' declared sizes in all, against the sheet budget: openpyxl keeps every cell as an
    object, about 20 bytes of memory per byte of sheet XML (measured with openpyxl 3.1: 335 MiB for
    16 MiB of one-cell rows), so a package may decode to 1/32 of the limit (128 MiB of XML at the
    default 4 GiB, some millions of cells);
  - each member's compression ratio: at most 100 to 1 once a member passes 1 MiB (Apache POI's
    ZipSecureFile default; sheet XML compresses 5 to 20 times);
  - each member's stream, inflated here a chunk at a time: it must decode to what the directory
    declares. zipfile truncates a member at its declared size, but its read() inflates the whole
    stream in one call first, so a member that declares little and holds a gigabyte is refused
    before openpyxl reads it.
"""

from __future__ import annotations

import io
import os
import zipfile
from struct import unpack_from

from medlake.decompression.limits import ENV, DecompressionLimit, human, max_decoded_bytes
from medlake.decompression.streams import RAW_DEFLATE, Inflater

MEMORY_PER_XML_BYTE = 32
MAX_RATIO = 100
RATIO_GRACE = 1 << 20
_LOCAL_HEADER = 30


def sheet_budget(limit: int | None = None) -> int:
    return (max_decoded_bytes() if limit is None else limit) // MEMORY_PER_XML_BYTE


def check_spreadsheet(source, what: str = "the xlsx label sheet", limit: int | None = None) -> None:
    """DecompressionLimit when the package at `source` (bytes or a path) decodes past its budget,
    by declaration or by stream; a file that is not a zip is left to openpyxl to refuse."""
    budget = sheet_budget(limit)
    fh = io.BytesIO(source) if isinstance(source, bytes | bytearray) else open(os.fspath(source), "rb")
    with fh:
        try:
            members = zipfile.ZipFile(fh).infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return
        declared = sum(m.file_size for m in members)
        if declared > budget:
            raise DecompressionLimit(
                f"{what} declares {human(declared)} of XML; openpyxl holds about {MEMORY_PER_XML_BYTE} bytes per byte "
                f"of it, so a sheet may decode to {human(budget)} (1/{MEMORY_PER_XML_BYTE} of {ENV})")
        for n, m in enumerate(members, start=1):
            if m.file_size > RATIO_GRACE and m.file_size > MAX_RATIO * max(1, m.compress_size):
                raise DecompressionLimit(f"member {n} of {what} is compressed {m.file_size // max(1, m.compress_size)} "
                                         f"to 1, more than {MAX_RATIO} to 1")
            _check_stream(fh, m, f"member {n} of {what}")


def _check_stream(fh, m: zipfile.ZipInfo, what: str) -> None:
    if m.compress_type == zipfile.ZIP_STORED:
        if m.compress_size != m.file_size:
            raise DecompressionLimit(f"{what} is stored uncompressed but declares two sizes")
        return
    if m.compress_type != zipfile.ZIP_DEFLATED:
        raise DecompressionLimit(f"{what} uses zip compression method {m.compress_type}; only stored and "
                                 "deflate members are read")
    fh.seek(m.header_offset)
    local = fh.read(_LOCAL_HEADER)
    if len(local) < _LOCAL_HEADER or local[:4] != b"PK\x03\x04":
        return  # zipfile refuses it when openpyxl opens the member
    name_len, extra_len = unpack_from("<HH", local, 26)
    fh.seek(m.header_offset + _LOCAL_HEADER + name_len + extra_len)
    left = m.compress_size

    def read(k: int) -> bytes:
        nonlocal left
        piece = fh.read(min(k, left))
        left -= len(piece)
        return piece

    stream = Inflater(read, RAW_DEFLATE, what, m.file_size)
    try:
        stream.drain()
    except DecompressionLimit:
        raise DecompressionLimit(f"{what} decodes to more than the {human(m.file_size)} the zip directory "
                                 "declares: the stream lies about its size") from None
    except ValueError:
        return  # a corrupt stream: openpyxl's zipfile says so


__all__ = ["MAX_RATIO", "MEMORY_PER_XML_BYTE", "check_spreadsheet", "sheet_budget"]
