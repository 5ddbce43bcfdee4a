"""PNG masks: the size the IHDR chunk declares, checked before Pillow decodes anything.

Pillow decodes exactly the declared image (its inflater fills one row at a time, and text chunks
are capped by PngImagePlugin.MAX_TEXT_CHUNK), so a stream that lies is held to the declaration;
what is left to check is the declaration itself. Pillow's own guard (Image.MAX_IMAGE_PIXELS:
DecompressionBombError beyond twice 89,478,485 pixels) stays on and is reported as the same
refusal.
"""

from __future__ import annotations

import contextlib
import io
from struct import unpack_from

from medlake.decompression.limits import DecompressionLimit, check_declared

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def declared_bytes(head: bytes) -> int | None:
    """Bytes the image data inflates to (rows of filtered scanlines), from the IHDR chunk at the
    start of `head`; None when `head` does not start that way (Pillow will say what is wrong)."""
    if len(head) < 33 or not head.startswith(SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour = unpack_from(">IIBB", head, 16)
    channels = _CHANNELS.get(colour)
    if channels is None:
        return None
    return height * (1 + (width * channels * depth + 7) // 8)


def check_png(head: bytes, what: str = "the PNG mask", limit: int | None = None) -> None:
    declared = declared_bytes(head)
    if declared is not None:
        width, height = unpack_from(">II", head, 16)
        check_declared(f"{what} ({width}x{height} pixels)", declared, limit)


@contextlib.contextmanager
def open_png(source, what: str = "the PNG mask", limit: int | None = None):
    """Image.open of a path or bytes after check_png; Pillow's bomb error as DecompressionLimit."""
    from PIL import Image

    if isinstance(source, bytes | bytearray):
        head, fp = bytes(source[:64]), io.BytesIO(source)
    else:
        with open(source, "rb") as fh:
            head = fh.read(64)
        fp = source
    check_png(head, what, limit)
    try:
        im = Image.open(fp)
    except Image.DecompressionBombError:
        raise DecompressionLimit(f"{what} has more pixels than Pillow decodes "
                                 f"({2 * Image.MAX_IMAGE_PIXELS:,}; Image.MAX_IMAGE_PIXELS)") from None
    with im:
        yield im


__all__ = ["SIGNATURE", "check_png", "declared_bytes", "open_png"]
