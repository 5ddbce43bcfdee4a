"""Image files other than DICOM, scanned where text lives and not in their pixels.

Pixel bytes of a smooth image hold long runs of printable bytes; read as text, one of them sooner
or later passes a national-id checksum. So TIFF (whole-slide images) is scanned tag by tag, and a
NIfTI mask only up to its voxel data (header text fields and extensions).
"""

from __future__ import annotations

import gzip
import struct

from medlake.checker.sink import Sink

TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NIFTI_HEADER = 348


def scan_tiff_into(path: str, sink: Sink) -> None:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        for i, page in enumerate(tif.pages):
            for tag in page.tags.values():
                value = tag.value
                loc = f"tiff:page{i}:{tag.name}"
                if isinstance(value, bytes):
                    sink.check_bytes(loc, value)
                elif isinstance(value, str):
                    sink.check(loc, value)
                elif isinstance(value, (tuple, list)):
                    for v in value:
                        if isinstance(v, str):
                            sink.check(loc, v)
                        elif isinstance(v, bytes):
                            sink.check_bytes(loc, v)


def is_nifti_gz(path: str, head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b" and path.lower().endswith(".nii.gz")


def scan_nifti_gz_into(path: str, sink: Sink) -> None:
    with gzip.open(path, "rb") as f:
        header = f.read(_NIFTI_HEADER + 4)
        if len(header) < _NIFTI_HEADER:
            sink.check_bytes("nifti:header", header)
            return
        endian = "<" if struct.unpack("<i", header[:4])[0] == _NIFTI_HEADER else ">"
        vox_offset = int(struct.unpack(endian + "f", header[108:112])[0])
        extensions = f.read(max(0, vox_offset - len(header))) if vox_offset > len(header) else b""
    sink.check_bytes("nifti:header", header)
    if extensions:
        sink.check_bytes("nifti:extensions", extensions)
