"""Before pixel data is decoded (pixel cleaning, defacing, SEG masks): the size it declares.

Two declarations are checked, both before any decoder runs: the data set's own (Rows x Columns x
frames x samples x bytes a sample, which is what pydicom's array holds) against the limit, and
each compressed frame's (codestreams.py) against the data set's frame, since a decoder believes
the frame. RLE has no size header; its runs can expand 64 times, so an RLE frame may be no larger
than its decoded frame could need, which holds the decoder to 64 times the declared frame.
"""

from __future__ import annotations

from pydicom import uid as U
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from medlake.decompression.codestreams import frame_size
from medlake.decompression.limits import DecompressionLimit, check_declared, human

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_RLE_HEADER = 64


def _int(ds: Dataset, keyword: str, default: int) -> int:
    try:
        v = int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        return default
    return v if v > 0 else default


def frame_bytes(ds: Dataset) -> int:
    """Bytes of one decoded frame as pydicom returns it (1-bit data unpacks to a byte a pixel)."""
    bits = 64 if "DoubleFloatPixelData" in ds else 32 if "FloatPixelData" in ds else _int(ds, "BitsAllocated", 8)
    return (_int(ds, "Rows", 0) * _int(ds, "Columns", 0) * _int(ds, "SamplesPerPixel", 1)
            * max(1, (bits + 7) // 8))


def check_pixel_decode(ds: Dataset, limit: int | None = None) -> None:
    """DecompressionLimit when decoding ds's pixel data would pass the limit or a frame declares
    more than the data set; returns quietly when there is no pixel data."""
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        return
    frames = _int(ds, "NumberOfFrames", 1)
    per_frame = frame_bytes(ds)
    check_declared(f"the pixel data ({frames} frame(s) of {human(per_frame)})", frames * per_frame, limit)
    meta = getattr(ds, "file_meta", None)
    ts = U.UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else U.UID("")
    if "PixelData" not in ds or not ts.is_transfer_syntax or not ts.is_encapsulated:
        return
    for i, frame in enumerate(_frames(ds.PixelData, frames), start=1):
        if ts == U.RLELossless:
            # A run of 128 bytes costs 2, so no frame needs more than its decoded size plus one
            # byte in 128 (literal runs) and the header.
            if len(frame) > per_frame + per_frame // 128 + _RLE_HEADER + 16:
                raise DecompressionLimit(f"RLE frame {i} of {frames} is {human(len(frame))}, more than a frame of "
                                         f"{human(per_frame)} can need: it could decode to up to 64 times that")
            continue
        declared = frame_size(ts, frame)
        if declared is None:
            continue
        if declared.height == 0:
            raise DecompressionLimit(f"frame {i} of {frames} leaves its height to a later marker (DNL), "
                                     "so its decoded size cannot be checked before decoding")
        if declared.bytes > per_frame:
            raise DecompressionLimit(f"frame {i} of {frames} declares {declared} ({human(declared.bytes)}), more "
                                     f"than the data set's frame of {human(per_frame)}")


def _frames(pixel_data: bytes, frames: int):
    """The first `frames` frames; malformed encapsulation ends the walk (the decoder reports it)."""
    it = generate_frames(pixel_data, number_of_frames=frames)
    for _ in range(frames):
        try:
            yield next(it)
        except StopIteration:
            return
        except Exception:  # noqa: BLE001 - pydicom's own decode raises its error for the same data
            return


__all__ = ["check_pixel_decode", "frame_bytes"]
