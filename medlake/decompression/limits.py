"""The one limit on decoded bytes, MEDLAKE_MAX_DECODED_BYTES, and the refusal when it is passed.

The default, 4 GiB, is twice the largest object medlake decodes whole in real exports: multi-frame
ultrasound and angiography cines of 1 to 2 GB uncompressed. A 3D mask of 512 x 512 x 1000 voxels
(262 million) is 1 GiB even at four bytes a voxel. Whole-slide images of several gigabytes are
never decoded (their tiles are copied byte for byte), so they do not set it. Anything that would
decode to more than this from one object is not a medical image but a decompression bomb.
"""

from __future__ import annotations

import os
import re

ENV = "MEDLAKE_MAX_DECODED_BYTES"
DEFAULT = 4 << 30
CODE = "decompression_limit"

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30,
          "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}
_SIZE = re.compile(r"\s*(\d+)\s*([A-Za-z]*)\s*")


class DecompressionLimit(Exception):
    """An object whose decoded size passes the limit, declared or counted.

    The message names sizes and structures only (never a value from the file), so it may reach
    logs and quarantine tables as it is."""

    code = CODE

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def parse_limit(text: str | None) -> int:
    """Bytes from "4294967296", "4GiB", "512MiB", "64K" (binary units); the default when unset."""
    if text is None or not text.strip():
        return DEFAULT
    m = _SIZE.fullmatch(text)
    unit = _UNITS.get(m.group(2).lower()) if m else None
    if unit is None or int(m.group(1)) * unit <= 0:
        raise ValueError(f"{ENV} must be a positive number of bytes, optionally with a unit (KiB, MiB, GiB, TiB), "
                         f"e.g. 4GiB; got {text!r}")
    return int(m.group(1)) * unit


def max_decoded_bytes() -> int:
    """The limit now: read at each call, so a long-lived process follows its environment."""
    return parse_limit(os.environ.get(ENV))


def human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_declared(what: str, declared: int, limit: int | None = None) -> None:
    """Refuse before decoding when `what` declares more decoded bytes than the limit."""
    limit = max_decoded_bytes() if limit is None else limit
    if declared > limit:
        raise DecompressionLimit(f"{what} declares {human(declared)} decoded, more than the limit of {human(limit)} "
                                 f"({ENV})")
