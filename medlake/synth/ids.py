"""Deterministic randomness and UIDs: everything is a pure function of the seed and a path of names.

Wall-clock time, uuid4 and global random state are never used, so one seed and spec always give
byte-identical exports (tests compare whole trees).
"""

from __future__ import annotations

import hashlib
import random

# 2.25.<integer> is the ISO "UUID-derived" arc: any 128-bit integer is a valid, globally unique root
# without registering an organisation prefix.
_UID_ROOT = "2.25."


def _digest(parts: tuple) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()


def rng_for(*parts) -> random.Random:
    """A private random stream for one (seed, team, dataset, case, ...) path."""
    return random.Random(int.from_bytes(_digest(parts)[:8], "big"))


def uid_for(*parts) -> str:
    """A DICOM UID (<= 64 chars) derived from the path; different paths never collide in practice."""
    return _UID_ROOT + str(int.from_bytes(_digest(parts)[:16], "big"))
