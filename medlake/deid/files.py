"""De-identify one Part-10 file to a new file, copying unchanged pixel data without loading it.

Pixel data is most of an image file's bytes and de-identification of the header does not touch it.
So the header is read with stop_before_pixels, de-identified and written, and the pixel data
element is copied from the source file by the kernel (copy_file_range), never decoded nor even
held by pydicom. Anything unusual (no pixel offset, elements after the pixel data, deflated or big
endian transfer syntax) goes through pydicom whole: correct first, fast where it is safe.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, UID

from medlake.deid.context import DeidContext
from medlake.deid.errors import DeidError
from medlake.deid.profile import deidentify
from medlake.deid.report import DeidReport
from medlake.deid.writer import encode_dataset

# medlake's own implementation identity, written into every de-identified file's meta header.
# A 2.25 UUID-derived UID generated once for this project (not derived from any input).
IMPLEMENTATION_CLASS_UID = "2.25.187091512375853958290493307702981574523"
IMPLEMENTATION_VERSION_NAME = "MEDLAKE_DEID_1"

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_ITEM = 0xE000FFFE  # (FFFE,E000) read as a little-endian uint32
_SEQ_END = 0xE0DDFFFE
_TRAILING_PADDING = b"\xfc\xff\xfc\xff"  # (FFFC,FFFC) little endian
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_MAX_TAIL = 1 << 20  # bytes after the pixel data we are willing to inspect in the fast path
_READ_ERRORS = (InvalidDicomError, EOFError, struct.error, ValueError, KeyError, OverflowError,
                TypeError, AttributeError, NotImplementedError)


def deidentify_file(src: Path | str | bytes, dst: Path | str, ctx: DeidContext,
                    pixel_data_offset: int | None,
                    pixels_changed: bytes | None = None) -> DeidReport:
    """De-identify `src` (a path or the file's bytes) into `dst`, atomically.

    pixel_data_offset: source_instances.pixel_data_offset (byte offset of the pixel data element),
      or None when the object has none or it is unknown (the whole file then goes through pydicom).
    pixels_changed: the new Pixel Data *value* (from pixels.py/deface.py), encoded in the source's
      transfer syntax (native bytes, or encapsulated items + delimiter for compressed syntaxes).
    """
    dst = Path(dst)
    if isinstance(src, (bytes, bytearray, memoryview)):
        fh = io.BytesIO(bytes(src))
        size = len(src)
    else:
        try:
            fh = open(src, "rb")
        except OSError as e:
            raise DeidError("unreadable", f"source file cannot be opened ({type(e).__name__})") from None
        size = os.fstat(fh.fileno()).st_size
    with fh:
        ds = _read(fh, stop_before_pixels=True)
        ts = _transfer_syntax(ds)
        span = None
        if pixel_data_offset is not None and _fast_path_possible(ts):
            if fh.tell() != pixel_data_offset:
                raise DeidError("pixel_offset_mismatch",
                                "the header does not end at the catalogued pixel data offset")
            span = _pixel_span(fh, pixel_data_offset, size, ts.is_implicit_VR)
        if span is None:  # the general path: every element through pydicom, pixels undecoded
            fh.seek(0)
            ds = _read(fh, stop_before_pixels=False)
            if pixels_changed is not None:
                if "PixelData" not in ds:
                    raise DeidError("no_pixel_data", "pixels_changed given for an object without pixel data")
                ds.PixelData = _even(pixels_changed)
        report = deidentify(ds, ctx)
        report.fast_path = span is not None
        _write(dst, _meta_bytes(ds, ts), ds, ts, fh, span, pixels_changed)
    return report


def deidentify_dataset(ds: Dataset, dst: Path | str, ctx: DeidContext) -> DeidReport:
    """De-identify a data set already in memory (pixels cleaned or defaced) into `dst`, atomically.

    Serialising it to bytes only to parse them again cost as much as the cleaning itself; the
    whole data set goes through pydicom's writer, pixel data included.
    """
    _require_part10(ds)
    ts = _transfer_syntax(ds)
    report = deidentify(ds, ctx)
    report.fast_path = False
    _write(Path(dst), _meta_bytes(ds, ts), ds, ts, None, None, None)
    return report


def _read(fh, stop_before_pixels: bool) -> Dataset:
    try:
        ds = pydicom.dcmread(fh, stop_before_pixels=stop_before_pixels)
    except _READ_ERRORS as e:
        raise DeidError("unreadable", f"the DICOM file cannot be parsed ({type(e).__name__})") from None
    _require_part10(ds)
    return ds


def _require_part10(ds: Dataset) -> None:
    if not isinstance(ds, pydicom.FileDataset) or "TransferSyntaxUID" not in ds.file_meta:
        raise DeidError("not_part10", "not a Part-10 file with a transfer syntax")


def _transfer_syntax(ds) -> UID:
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    if not ts.is_transfer_syntax:
        raise DeidError("unknown_transfer_syntax", "the transfer syntax is not one DICOM defines")
    return ts


def _fast_path_possible(ts: UID) -> bool:
    # Deflate compresses the whole data set, pixel data included; big endian (retired) is rare
    # enough not to deserve its own byte-level parser.
    return not ts.is_deflated and ts != ExplicitVRBigEndian


def _even(data: bytes) -> bytes:
    return data + b"\x00" if len(data) % 2 else data


class _Span:
    """Where the pixel data element is in the source: [start, end) plus its header layout."""

    def __init__(self, start: int, end: int, header: bytes, undefined: bool):
        self.start, self.end, self.header, self.undefined = start, end, header, undefined


def _pixel_span(fh, offset: int, size: int, implicit: bool) -> _Span | None:
    """Locate the pixel data element; None when the fast path must not be used."""
    fh.seek(offset)
    head = fh.read(12)
    if len(head) < 8:
        raise DeidError("truncated", "the file ends inside the pixel data element header")
    tag = struct.unpack("<HH", head[:4])
    if (tag[0] << 16 | tag[1]) not in _PIXEL_TAGS:
        raise DeidError("pixel_offset_mismatch", "no pixel data element at the catalogued offset")
    if implicit:
        header, length = head[:8], struct.unpack("<I", head[4:8])[0]
    else:
        if head[4:6] not in _LONG_VRS or len(head) < 12:
            raise DeidError("bad_pixel_element", "the pixel data element has an unexpected VR")
        header, length = head[:12], struct.unpack("<I", head[8:12])[0]
    start_value = offset + len(header)
    if length == 0xFFFFFFFF:
        end = _encapsulated_end(fh, start_value, size)
    else:
        end = start_value + length
    if end > size:
        raise DeidError("truncated", "the file ends inside the pixel data")
    if end < size and not _only_padding(fh, end, size):
        return None  # elements after the pixel data: let pydicom de-identify them
    return _Span(offset, end, header, length == 0xFFFFFFFF)


def _encapsulated_end(fh, pos: int, size: int) -> int:
    """Walk the fragment items (8-byte headers, seeking over their values) to the delimiter."""
    while pos + 8 <= size:
        fh.seek(pos)
        tag, length = struct.unpack("<II", fh.read(8))
        if tag == _SEQ_END:
            return pos + 8
        if tag != _ITEM or length == 0xFFFFFFFF:
            raise DeidError("bad_encapsulation", "encapsulated pixel data has a malformed item")
        pos += 8 + length
    raise DeidError("truncated", "encapsulated pixel data has no sequence delimiter")


def _only_padding(fh, end: int, size: int) -> bool:
    """True when what follows the pixel data is dropped safely: zero bytes, or exactly one Data Set
    Trailing Padding element (X in Table E.1-1: padding may hold leftovers of other data)."""
    if size - end > _MAX_TAIL:
        return False
    fh.seek(end)
    tail = fh.read()
    if not tail.strip(b"\x00"):
        return True
    if tail[:4] == _TRAILING_PADDING and len(tail) >= 8:
        # explicit VR: tag, "OB", 2 reserved, 4-byte length; implicit: tag, 4-byte length
        if tail[4:6] == b"OB" and len(tail) >= 12:
            return 12 + struct.unpack("<I", tail[8:12])[0] == len(tail)
        return 8 + struct.unpack("<I", tail[4:8])[0] == len(tail)
    return False


def _meta_bytes(ds: Dataset, ts: UID) -> bytes:
    """Preamble, DICM and a fresh meta header: nothing of the source's meta (sending AE titles,
    private meta, a TIFF header in the preamble) survives.

    Encoded by hand: the group is six fixed elements, and pydicom's meta writer (which deep-copies
    the meta dataset) cost a quarter of the per-file time.
    """
    def uid(tag_el: int, value: str) -> bytes:
        data = value.encode("ascii")
        data += b"\x00" * (len(data) % 2)
        return struct.pack("<HH2sH", 2, tag_el, b"UI", len(data)) + data

    name = IMPLEMENTATION_VERSION_NAME.encode("ascii")
    name += b" " * (len(name) % 2)
    body = (struct.pack("<HH2sHI", 2, 1, b"OB", 0, 2) + b"\x00\x01"
            + uid(0x0002, _text_of(ds, 0x00080016)) + uid(0x0003, _text_of(ds, 0x00080018))
            + uid(0x0010, str(ts)) + uid(0x0012, IMPLEMENTATION_CLASS_UID)
            + struct.pack("<HH2sH", 2, 0x13, b"SH", len(name)) + name)
    return (b"\x00" * 128 + b"DICM" + struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(body)) + body)


def _text_of(ds: Dataset, tag: int) -> str:
    elem = ds._dict.get(tag)
    if elem is None:
        raise DeidError("missing_uid", f"({tag >> 16:04X},{tag & 0xFFFF:04X}) is missing")
    v = elem.value
    text = v.decode("ascii", "replace") if isinstance(v, bytes) else str(v or "")
    text = text.strip(" \x00")
    if not text:
        raise DeidError("missing_uid", f"({tag >> 16:04X},{tag & 0xFFFF:04X}) is empty")
    return text


def _write(dst: Path, meta: bytes, ds: Dataset, ts: UID, src_fh, span: _Span | None,
           pixels_changed: bytes | None) -> None:
    # Same folder as dst so the rename is atomic; pid in the name so parallel workers never
    # share a temporary file.
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as out:
            out.write(meta)
            try:
                if span is not None:  # fast path: little endian, header of mostly raw elements
                    out.write(encode_dataset(ds, ts.is_implicit_VR))
                else:
                    fp = DicomFileLike(out)
                    fp.is_implicit_VR, fp.is_little_endian = ts.is_implicit_VR, ts.is_little_endian
                    write_dataset(fp, ds)
            except _READ_ERRORS as e:
                raise DeidError("unwritable", f"the de-identified header cannot be encoded "
                                              f"({type(e).__name__})") from None
            if span is not None:
                if pixels_changed is None:
                    out.flush()
                    _copy_range(src_fh, out, span.start, span.end - span.start)
                else:
                    out.write(_pixel_element(span, _even(pixels_changed)))
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _pixel_element(span: _Span, value: bytes) -> bytes:
    """The source element's header (tag, VR) with the new value's length."""
    if span.undefined:
        return span.header + value
    return span.header[:-4] + struct.pack("<I", len(value)) + value


def _copy_range(src_fh, out, start: int, count: int) -> None:
    try:
        src_fd = src_fh.fileno()
    except (AttributeError, io.UnsupportedOperation):
        src_fh.seek(start)  # bytes input: already in memory
        out.write(src_fh.read(count))
        return
    out_fd = out.fileno()
    pos = start
    try:
        while count > 0:
            n = os.copy_file_range(src_fd, out_fd, count, pos)
            if n == 0:
                raise DeidError("truncated", "the source file ended while copying pixel data")
            pos += n
            count -= n
    except OSError:  # filesystems without copy_file_range: plain buffered copy
        src_fh.seek(pos)
        while count > 0:
            chunk = src_fh.read(min(count, 1 << 20))
            if not chunk:
                raise DeidError("truncated", "the source file ended while copying pixel data") from None
            out.write(chunk)
            count -= len(chunk)
