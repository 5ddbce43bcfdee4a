"""Sequences de-identified as bytes, without building a pydicom Dataset per item.

A structure set or segmentation carries thousands of small reference items (a class UID and an
instance UID each). Parsing each into a Dataset cost more than all the image slices of the study
together. When every element of a sequence needs only keep, remove or UID remapping, the sequence
is rewritten here straight from its raw bytes (explicit VR little endian, output with defined
lengths); anything else makes `rewrite` return None and the caller walks it the ordinary way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from struct import error as StructError
from struct import pack, unpack_from

from medlake.deid import rules
from medlake.deid.table import Action

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
# Elements whose handling depends on their value or on the object (pseudonyms, birth date,
# accession numbers, age grouping): always through the ordinary walk.
_VALUE_DEPENDENT = frozenset({rules.PATIENT_ID, rules.PATIENT_NAME, rules.PATIENT_BIRTH_DATE,
                              rules.ACCESSION_NUMBER, rules.PATIENT_AGE})
_DATE_VRS = {b"DA", b"DT"}


class _Fallback(Exception):
    pass


class RawSequenceRewriter:
    """Rewrites one sequence value; `actions` and `extra` are the walk's own action lookups."""

    def __init__(self, actions: dict, extra: Callable[[int], Action | None], map_uid: Callable[[str], str],
                 max_depth: int):
        self.actions, self.extra, self.map_uid, self.max_depth = actions, extra, map_uid, max_depth

    def rewrite(self, value: bytes, depth: int) -> tuple[bytes, Counter] | None:
        counts: Counter = Counter()
        try:
            out, pos = self._sequence(value, 0, len(value), depth, counts)
        except (_Fallback, StructError, IndexError, ValueError, UnicodeDecodeError):
            return None
        return out, counts

    def _sequence(self, buf: bytes, pos: int, end: int | None, depth: int, counts: Counter) -> tuple[bytes, int]:
        """Items from `pos` until `end` (defined length) or the sequence delimiter."""
        if depth > self.max_depth:
            raise _Fallback
        counts["sequences"] += 1
        items = []
        limit = len(buf) if end is None else end
        while pos < limit:
            tag = (unpack_from("<H", buf, pos)[0] << 16) | unpack_from("<H", buf, pos + 2)[0]
            length = unpack_from("<I", buf, pos + 4)[0]
            pos += 8
            if tag == _SEQ_END:
                return b"".join(items), pos
            if tag != _ITEM:
                raise _Fallback
            item_end = None if length == _UNDEFINED else pos + length
            content, pos = self._item(buf, pos, item_end, depth + 1, counts)
            items.append(pack("<HHI", 0xFFFE, 0xE000, len(content)) + content)
            counts["items"] += 1
        if end is None:
            raise _Fallback  # undefined-length sequence without its delimiter
        return b"".join(items), pos

    def _item(self, buf: bytes, pos: int, end: int | None, depth: int, counts: Counter) -> tuple[bytes, int]:
        parts = []
        limit = len(buf) if end is None else end
        while pos < limit:
            group, el = unpack_from("<HH", buf, pos)
            tag = (group << 16) | el
            if tag == _ITEM_END:
                return b"".join(parts), pos + 8
            if group & 1 or group == 0xFFFE:
                raise _Fallback  # private elements and stray delimiters: the ordinary walk decides
            vr = buf[pos + 4:pos + 6]
            if vr in _LONG_VRS:
                length, hdr = unpack_from("<I", buf, pos + 8)[0], 12
            elif len(vr) == 2 and vr.isalpha() and vr.isupper():
                length, hdr = unpack_from("<H", buf, pos + 6)[0], 8
            else:
                raise _Fallback
            start = pos
            pos += hdr
            if el == 0 or rules.is_repeating_group_to_remove(group) or tag == rules.ICON_IMAGE_SEQUENCE \
                    or tag in _VALUE_DEPENDENT:
                raise _Fallback
            action = self.actions.get(tag)
            if action is None:
                action = self.extra(tag)
            if vr == b"SQ":
                if action is Action.X or action is Action.Z:
                    raise _Fallback
                sub, pos = self._sequence(buf, pos, None if length == _UNDEFINED else pos + length, depth, counts)
                parts.append(pack("<HH2sHI", group, el, b"SQ", 0, len(sub)) + sub)
                continue
            if length == _UNDEFINED or pos + length > len(buf):
                raise _Fallback
            raw = buf[pos:pos + length]
            pos += length
            if action is Action.X:
                counts["removed"] += 1
            elif vr == b"UI":
                parts.append(self._uid(group, el, tag, action, raw, counts))
            elif vr in _DATE_VRS:
                raise _Fallback
            elif action is None or action is Action.K:
                parts.append(buf[start:pos])
                counts["kept"] += 1
            else:
                raise _Fallback
        if end is None:
            raise _Fallback  # undefined-length item without its delimiter
        return b"".join(parts), pos

    def _uid(self, group: int, el: int, tag: int, action, raw: bytes, counts: Counter) -> bytes:
        if action is Action.Z:
            counts["emptied"] += 1
            return pack("<HH2sH", group, el, b"UI", 0)
        text = raw.decode("ascii").strip(" \x00")
        if action is Action.K or (action is None and rules.uid_tag_is_well_known(tag)) or not text:
            counts["uid_well_known" if text else "kept"] += 1
            return pack("<HH2sH", group, el, b"UI", len(raw)) + raw
        if action not in (None, Action.U, Action.D):
            raise _Fallback
        mapped = []
        for u in text.split("\\"):
            u = u.strip(" \x00")
            if not u or rules.uid_value_is_well_known(u):
                mapped.append(u)
                counts["uid_well_known"] += 1
            else:
                mapped.append(self.map_uid(u))
                counts["uid_remapped"] += 1
        data = "\\".join(mapped).encode("ascii")
        if len(data) % 2:
            data += b"\x00"
        return pack("<HH2sH", group, el, b"UI", len(data)) + data
