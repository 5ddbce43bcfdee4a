"""The image size a compressed frame's own header declares (JPEG, JPEG-LS, JPEG 2000).

A decoder sizes its output from the codestream, not from the DICOM Rows and Columns: a frame of a
few hundred bytes whose SOF says 65,000 x 65,000 makes it allocate gigabytes before it finds that
the scan data is missing. These readers walk only the markers that precede the scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import unpack_from

from pydicom import uid as U

JPEG_SYNTAXES = frozenset({U.JPEGBaseline8Bit, U.JPEGExtended12Bit, U.JPEGLossless, U.JPEGLosslessSV1,
                           U.JPEGLSLossless, U.JPEGLSNearLossless})
J2K_SYNTAXES = frozenset({U.JPEG2000Lossless, U.JPEG2000, U.JPEG2000MCLossless, U.JPEG2000MC, U.HTJ2KLossless,
                          U.HTJ2KLosslessRPCL, U.HTJ2K})
# SOF0-3, 5-7, 9-11, 13-15 (ITU T.81) and SOF55 (JPEG-LS, T.87)
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_SIZ_SEARCH = 1 << 20  # a JP2 wrapper puts a few boxes before the codestream


@dataclass(frozen=True)
class FrameSize:
    width: int
    height: int
    components: int
    precision: int  # bits per sample

    @property
    def bytes(self) -> int:
        return self.width * self.height * self.components * ((self.precision + 7) // 8)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.components} at {self.precision} bits"


def frame_size(transfer_syntax: str, frame: bytes) -> FrameSize | None:
    """What `frame` declares, or None when its syntax has no such header here or none is found
    (a decoder finds none either: it needs the frame header before the scan)."""
    if transfer_syntax in JPEG_SYNTAXES:
        return _jpeg(frame)
    if transfer_syntax in J2K_SYNTAXES:
        return _j2k(frame)
    return None


def _jpeg(frame: bytes) -> FrameSize | None:
    if frame[:2] != b"\xff\xd8":
        return None
    pos, n = 2, len(frame)
    while pos + 4 <= n:
        if frame[pos] != 0xFF:
            return None
        marker = frame[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or a scan before any frame header
            return None
        (length,) = unpack_from(">H", frame, pos + 2)
        if marker in _SOF:
            if pos + 10 > n:
                return None
            precision = frame[pos + 4]
            height, width = unpack_from(">HH", frame, pos + 5)
            return FrameSize(width, height, frame[pos + 9], precision)
        pos += 2 + length
    return None


def _j2k(frame: bytes) -> FrameSize | None:
    i = frame.find(b"\xff\x4f\xff\x51", 0, _SIZ_SEARCH)
    if i < 0 or i + 42 > len(frame):
        return None
    xsiz, ysiz, xosiz, yosiz = unpack_from(">IIII", frame, i + 8)
    (csiz,) = unpack_from(">H", frame, i + 40)
    depths = [(frame[i + 42 + 3 * c] & 0x7F) + 1 for c in range(csiz) if i + 42 + 3 * c < len(frame)]
    if xsiz < xosiz or ysiz < yosiz or not depths:
        return None
    return FrameSize(xsiz - xosiz, ysiz - yosiz, csiz, max(depths))


__all__ = ["FrameSize", "J2K_SYNTAXES", "JPEG_SYNTAXES", "frame_size"]
