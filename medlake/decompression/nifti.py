"""Gzipped NIfTI masks (.nii.gz): the voxels the header declares, and a stream held to them.

A NIfTI header says exactly how much follows it (vox_offset, then dims x datatype), so both checks
are tight: the declared size against the limit before the voxels are decoded, and the stream
against the declared size while it is decoded. A stream that goes on past its voxels (beyond a
little padding) lies about its size and is refused; nothing past the voxels is ever kept.
Voxels come out a chunk at a time, so nothing here holds a volume in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from struct import unpack_from

import numpy as np

from medlake.decompression.limits import DecompressionLimit, check_declared, human, max_decoded_bytes
from medlake.decompression.streams import CHUNK, GZIP, Inflater, Read

NIFTI1_HEADER = 348
NIFTI2_HEADER = 540
SINGLE_FILE_OFFSET = NIFTI1_HEADER + 4  # the header and the four-byte extension flag
PADDING = 1 << 20  # bytes after the voxels tolerated (and dropped) before a stream counts as lying

# NIfTI datatype code -> (numpy type of one component, components per voxel)
DATATYPES = {2: ("u1", 1), 4: ("i2", 1), 8: ("i4", 1), 16: ("f4", 1), 32: ("c8", 1), 64: ("f8", 1),
             128: ("u1", 3), 256: ("i1", 1), 512: ("u2", 1), 768: ("u4", 1), 1024: ("i8", 1), 1280: ("u8", 1),
             1792: ("c16", 1), 2304: ("u1", 4)}


class NiftiInvalid(ValueError):
    """Not a NIfTI-1 or NIfTI-2 header medlake can read; the message names the field."""


@dataclass(frozen=True)
class NiftiHeader:
    raw: bytes        # the header as stored (348 or 540 bytes)
    version: int      # 1 or 2
    endian: str       # "<" or ">"
    dims: tuple[int, ...]  # dim[1..dim[0]]: x, y, z, ...
    datatype: int
    bitpix: int
    vox_offset: int   # where the voxels start in the decoded stream
    scl_slope: float
    scl_inter: float

    @property
    def voxels(self) -> int:
        return math.prod(self.dims)

    @property
    def voxel_bytes(self) -> int:
        if self.datatype in DATATYPES:
            kind, components = DATATYPES[self.datatype]
            return self.voxels * components * np.dtype(kind).itemsize
        return (self.voxels * self.bitpix + 7) // 8

    @property
    def shape(self) -> tuple[int, ...]:
        """Array order (slices, rows, columns), as SimpleITK gives it; trailing single
        dimensions past the third are dropped."""
        dims = list(self.dims)
        while len(dims) > 3 and dims[-1] == 1:
            dims.pop()
        return tuple(reversed(dims))

    def component_dtype(self) -> np.dtype:
        if self.datatype not in DATATYPES:
            raise NiftiInvalid(f"NIfTI datatype {self.datatype} is not one medlake reads")
        return np.dtype(DATATYPES[self.datatype][0]).newbyteorder(self.endian)


def header_size(first4: bytes) -> tuple[int, str]:
    for endian in ("<", ">"):
        (n,) = unpack_from(endian + "i", first4)
        if n in (NIFTI1_HEADER, NIFTI2_HEADER):
            return n, endian
    raise NiftiInvalid("the header size is neither 348 (NIfTI-1) nor 540 (NIfTI-2)")


def parse_header(raw: bytes) -> NiftiHeader:
    if len(raw) < 4:
        raise NiftiInvalid("the file is shorter than a NIfTI header")
    size, e = header_size(raw[:4])
    if len(raw) < size:
        raise NiftiInvalid("the file is shorter than its NIfTI header")
    raw = bytes(raw[:size])
    if size == NIFTI1_HEADER:
        if raw[344:347] not in (b"n+1", b"ni1"):
            raise NiftiInvalid("the NIfTI-1 magic is missing")
        dim = unpack_from(e + "8h", raw, 40)
        datatype, bitpix = unpack_from(e + "hh", raw, 70)
        vox_offset = unpack_from(e + "f", raw, 108)[0]
        slope, inter = unpack_from(e + "ff", raw, 112)
        version, floor = 1, SINGLE_FILE_OFFSET
    else:
        if raw[4:8] != b"n+2\0":
            raise NiftiInvalid("the NIfTI-2 magic is missing")
        datatype, bitpix = unpack_from(e + "hh", raw, 12)
        dim = unpack_from(e + "8q", raw, 16)
        vox_offset = unpack_from(e + "q", raw, 168)[0]
        slope, inter = unpack_from(e + "dd", raw, 176)
        version, floor = 2, NIFTI2_HEADER + 4
    if not 1 <= dim[0] <= 7 or any(d < 1 for d in dim[1:dim[0] + 1]):
        raise NiftiInvalid("the NIfTI dimensions are not between 1 and 7 positive sizes")
    if datatype not in DATATYPES and bitpix <= 0:
        raise NiftiInvalid("the NIfTI header declares neither a known datatype nor bits per voxel")
    if not math.isfinite(vox_offset) or vox_offset < 0:
        raise NiftiInvalid("the NIfTI vox_offset is not a byte offset")
    return NiftiHeader(raw, version, e, tuple(int(d) for d in dim[1:dim[0] + 1]), int(datatype), int(bitpix),
                       max(int(vox_offset), floor), float(slope), float(inter))


class NiftiGz:
    """A .nii.gz read forwards: `header`, then `voxels()` a chunk at a time, then `finish()`.

    The declared size (vox_offset + voxels) is checked against the limit on opening; the stream
    may decode to at most that plus PADDING bytes."""

    def __init__(self, read: Read, what: str = "the NIfTI mask", limit: int | None = None):
        limit = max_decoded_bytes() if limit is None else limit
        self.what = what
        self._stream = Inflater(read, GZIP, what, limit)
        first = self._stream.read(4)
        size, _ = header_size(first) if len(first) == 4 else (NIFTI1_HEADER, "<")
        self.header = parse_header(first + self._stream.read(size - len(first)))
        self.declared = self.header.vox_offset + self.header.voxel_bytes
        check_declared(f"{what} ({'x'.join(map(str, self.header.dims))} voxels)", self.declared, limit)
        self._stream.limit = self.declared + PADDING
        self._decoded_header = size

    def voxels(self) -> Iterator[bytes]:
        """The declared voxel bytes, in chunks; NiftiInvalid when the stream ends before them."""
        gap = self.header.vox_offset - self._decoded_header
        if self._guard(lambda: self._stream.skip(gap)) < gap:
            raise NiftiInvalid("the NIfTI file ends before its voxels")
        left = self.header.voxel_bytes
        while left:
            piece = self._guard(lambda: self._stream.read(min(CHUNK, left)))
            if not piece:
                raise NiftiInvalid("the NIfTI file ends inside its voxels")
            left -= len(piece)
            yield piece

    def finish(self) -> None:
        """Decode what follows the voxels (dropped): DecompressionLimit if it passes PADDING."""
        self._guard(self._stream.drain)

    def _guard(self, step):
        try:
            return step()
        except DecompressionLimit:
            raise DecompressionLimit(
                f"{self.what} decodes to more than its header declares ({human(self.declared)} and "
                f"{human(PADDING)} of padding): the stream lies about its size") from None


def nonzero_count(mask: NiftiGz) -> int:
    """Non-zero values of the volume as SimpleITK reads it: scl_slope/scl_inter applied when they
    are not the identity, each component of an RGB voxel counted."""
    h = mask.header
    dtype = h.component_dtype()
    scaled = h.scl_slope != 0 and (h.scl_slope, h.scl_inter) != (1.0, 0.0) and DATATYPES[h.datatype][1] == 1
    count, carry = 0, b""
    for piece in mask.voxels():
        piece = carry + piece
        whole = len(piece) - len(piece) % dtype.itemsize
        values = np.frombuffer(piece[:whole], dtype)
        carry = piece[whole:]
        if scaled:
            values = values.astype(np.float64) * h.scl_slope + h.scl_inter
        count += int(np.count_nonzero(values))
    mask.finish()
    return count


__all__ = ["NIFTI1_HEADER", "NIFTI2_HEADER", "PADDING", "NiftiGz", "NiftiHeader", "NiftiInvalid", "nonzero_count",
           "parse_header"]
