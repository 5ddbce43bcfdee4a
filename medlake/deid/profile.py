"""The profile engine: apply Table E.1-1 (plus rules.py) to every element at every depth.

The walk follows the element tree, never references, so an SR whose content references itself
cannot loop. Elements whose action is "keep" are left as pydicom's raw (undecoded) elements and are
written back byte for byte: the engine decodes only what it changes, which is what makes it fast.
"""

from __future__ import annotations

import struct
from collections import Counter

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medlake.deid import rules
from medlake.deid.context import DeidContext
from medlake.deid.errors import DeidError
from medlake.deid.method import record
from medlake.deid.rawseq import RawSequenceRewriter
from medlake.deid.report import DeidReport
from medlake.deid.table import Action, Option, load_table
from medlake.deid.values import (
    DUMMY_DA, DUMMY_DT, FREE_TEXT_VRS, dummy_bytes, group_age, identifier_tokens, pad,
    scrub_descriptor, shift_da, shift_dt)

MAX_DEPTH = 64  # far beyond any real IOD; a deeper tree is malformed or hostile

# Values that name the patient or staff of this object, read before the walk changes them, so
# Clean Descriptors can scrub them out of descriptions.
_IDENTIFYING_TAGS = (
    0x00100010, 0x00100020, 0x00101001, 0x00101000, 0x00101005, 0x00101060, 0x00101040, 0x00102154,
    0x00080050, 0x00080080, 0x00080081, 0x00081040, 0x00080090, 0x00081050, 0x00081060, 0x00081070,
    0x00321032, 0x00081048, 0x00081010, 0x00181000, 0x00102297, 0x00700084, 0x300600A6)

# Failures of pydicom's value conversion on a malformed element.
_PARSE_ERRORS = (ValueError, TypeError, struct.error, UnicodeError, KeyError, IndexError,
                 NotImplementedError, OverflowError, EOFError, AttributeError)


def deidentify(ds: Dataset, ctx: DeidContext) -> DeidReport:
    """De-identify `ds` in place (file_meta is the writer's business) and record the method."""
    report = DeidReport()
    _Walk(ctx, report, ds).dataset(ds, 0)
    record(ds, ctx)
    report.add("recorded")
    return report


def _vr_of(tag: int, elem) -> str:
    """The VR to reason with: the element's own, or the dictionary's when it is missing/UN."""
    vr = elem.VR
    if vr is None or vr == "UN":
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return vr or "UN"
    if " or " in vr:  # ambiguous dictionary VRs ("US or SS"): any choice writes the same zeros
        vr = vr.split(" or ")[0]
    return vr


def _text(elem) -> str:
    """An ASCII-ish value as text without pydicom's conversion (UIDs, dates, ages, creators)."""
    if isinstance(elem, RawDataElement):
        v = elem.value
        return v.decode("latin-1").strip(" \x00") if v else ""
    v = elem.value
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("latin-1").strip(" \x00")
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return "\\".join(str(x) for x in v)
    return str(v).strip(" \x00")


class _Walk:
    def __init__(self, ctx: DeidContext, report: DeidReport, root: Dataset):
        self.ctx = ctx
        self.count: Counter = report.counts
        self.report = report
        table = load_table()
        self.actions = table.compile(ctx.options)
        self.dates_option = ctx.has(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES)
        self.chars_option = ctx.has(Option.RETAIN_PATIENT_CHARACTERISTICS)
        self.shift = ctx.shift_days if self.dates_option else 0
        self.safe_private = ctx.safe_private_keys
        d = root._dict
        self.top_id = _text(d[rules.PATIENT_ID]) if rules.PATIENT_ID in d else None
        self.top_name = _text(d[rules.PATIENT_NAME]) if rules.PATIENT_NAME in d else None
        self._id_elems = [d[t] for t in _IDENTIFYING_TAGS if t in d]
        self._identifiers: frozenset[str] | None = None
        self._dates: dict[tuple[str, str], str | None] = {}
        self.raw = RawSequenceRewriter(self.actions, lambda t: rules.extra_action(t, ctx.options),
                                       ctx.keys.uid, MAX_DEPTH)

    # --- structure ---------------------------------------------------------------------------

    def dataset(self, ds: Dataset, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise DeidError("too_deep", f"sequences nested deeper than {MAX_DEPTH} levels")
        if depth > self.report.max_depth:
            self.report.max_depth = depth
        d = ds._dict
        creators: list[int] = []
        kept_blocks: set[int] = set()
        for tag in list(d):
            elem = d[tag]
            group = tag >> 16
            if group & 1:
                self.private(ds, d, tag, elem, depth, creators, kept_blocks)
                continue
            if tag & 0xFFFF == 0:  # group lengths: obsolete, and wrong once values change
                del d[tag]
                self.count["group_length_removed"] += 1
                continue
            if rules.is_repeating_group_to_remove(group) or tag == rules.ICON_IMAGE_SEQUENCE:
                del d[tag]
                self.count["repeating_group_removed" if tag != rules.ICON_IMAGE_SEQUENCE
                           else "removed"] += 1
                continue
            action = self.actions.get(tag)
            if action is None:
                action = rules.extra_action(tag, self.ctx.options)
            try:
                self.element(ds, d, tag, elem, action, depth)
            except DeidError:
                raise
            except _PARSE_ERRORS as e:
                if self.ctx.strict:
                    raise DeidError("unparseable_element",
                                    f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) cannot be "
                                    f"parsed ({type(e).__name__})") from None
                # Never keep what could not be inspected.
                d.pop(tag, None)
                self.count["unparseable_removed"] += 1
        for ctag in creators:
            if ctag not in kept_blocks:
                del d[ctag]
                self.count["private_removed"] += 1

    def items(self, ds: Dataset, tag: int, depth: int) -> None:
        elem = ds._dict[tag]
        if (isinstance(elem, RawDataElement) and elem.is_little_endian and not elem.is_implicit_VR
                and isinstance(elem.value, bytes) and not tag >> 16 & 1):
            done = self.raw.rewrite(elem.value, depth)
            if done is not None:
                value, counts = done
                ds._dict[tag] = elem._replace(VR="SQ", length=len(value), value=value)
                self.count.update(counts)
                return
        seq = ds[tag].value  # pydicom parses the raw sequence here
        self.count["sequences"] += 1
        for item in seq:
            self.count["items"] += 1
            self.dataset(item, depth + 1)

    def private(self, ds, d, tag, elem, depth, creators, kept_blocks) -> None:
        """Private elements go unless (group, creator, element) is on the allow-list; a block whose
        creator is missing goes too, since nothing says what it holds."""
        el = tag & 0xFFFF
        if 0x10 <= el <= 0xFF:
            creators.append(tag)  # decided after the walk: kept only if an element of it is
            return
        if el >= 0x1000 and self.safe_private:
            ctag = (tag & 0xFFFF0000) | (el >> 8)
            celem = d.get(ctag)
            if celem is not None and (tag >> 16, _text(celem), el & 0xFF) in self.safe_private:
                kept_blocks.add(ctag)
                self.count["private_kept"] += 1
                if elem.VR == "SQ":
                    self.items(ds, tag, depth)
                return
        del d[tag]
        self.count["private_removed"] += 1

    # --- one public element ------------------------------------------------------------------

    def element(self, ds, d, tag, elem, action, depth) -> None:
        vr = _vr_of(tag, elem)
        if vr == "SQ":
            if action is Action.X:
                del d[tag]
                self.count["removed"] += 1
            elif action is Action.Z:
                d[tag] = DataElement(tag, "SQ", Sequence())
                self.count["emptied"] += 1
            else:  # K, D, C, U or unlisted: keep the sequence, apply the table inside
                self.items(ds, tag, depth)
            return
        if action is Action.X:
            del d[tag]
            self.count["removed"] += 1
            return
        if tag == rules.PATIENT_ID or tag == rules.PATIENT_NAME:
            top = self.top_id if tag == rules.PATIENT_ID else self.top_name
            if depth == 0 or (top and _text(elem) == top):
                self.put(d, tag, elem, vr, self.ctx.pseudonym.encode("ascii"))
                self.count["pseudonym"] += 1
                return
        elif tag == rules.PATIENT_BIRTH_DATE:
            # Birth dates never leave the restricted zone, shifted or not (Type 2: emptied).
            self.put(d, tag, elem, vr, b"")
            self.count["emptied"] += 1
            return
        elif tag == rules.ACCESSION_NUMBER and action is not Action.K:
            value = _text(elem)
            if value:  # keyed, so the objects of one exam still share an accession number
                self.put(d, tag, elem, vr, self.ctx.keys.accession(self.ctx.team, value).encode())
                self.count["pseudonym"] += 1
            return

        if vr == "UI":
            self.uid(d, tag, elem, action)
        elif vr == "DA" or vr == "DT":
            self.date(d, tag, elem, vr, action)
        elif action is None or action is Action.K:
            if tag == rules.PATIENT_AGE and self.chars_option:
                self.age(d, tag, elem, vr)
            else:
                self.count["kept"] += 1
        elif action is Action.Z:
            self.put(d, tag, elem, vr, b"")
            self.count["emptied"] += 1
        elif action is Action.D:
            self.put(d, tag, elem, vr, dummy_bytes(vr))
            self.count["dummy"] += 1
        elif action is Action.C:
            self.clean(ds, d, tag, elem, vr)
        elif action is Action.U:  # a U row whose element does not have VR UI: nothing to map
            del d[tag]
            self.count["removed"] += 1

    def put(self, d, tag, elem, vr, data: bytes) -> None:
        """Replace the value, keeping the element raw so the writer copies the bytes as given."""
        data = pad(data, vr)
        if isinstance(elem, RawDataElement):
            d[tag] = elem._replace(length=len(data), value=data)
        else:
            d[tag] = RawDataElement(tag, vr if elem.VR in (None, "UN") or " or " in elem.VR
                                    else elem.VR, len(data), data, 0, False, True)

    # --- value kinds -------------------------------------------------------------------------

    def uid(self, d, tag, elem, action) -> None:
        if action is Action.Z:
            self.put(d, tag, elem, "UI", b"")
            self.count["emptied"] += 1
            return
        if action is Action.K or (action is None and rules.uid_tag_is_well_known(tag)):
            self.count["uid_well_known"] += 1
            return
        text = _text(elem)
        if not text:
            self.count["kept"] += 1
            return
        mapped = []
        for u in text.split("\\"):
            u = u.strip(" \x00")
            if not u or rules.uid_value_is_well_known(u):
                mapped.append(u)
                self.count["uid_well_known"] += 1
            else:
                mapped.append(self.ctx.keys.uid(u))
                self.count["uid_remapped"] += 1
        self.put(d, tag, elem, "UI", "\\".join(mapped).encode("ascii"))

    def date(self, d, tag, elem, vr, action) -> None:
        """Dates and datetimes. Unlisted ones are treated like listed ones (shifted, or dummied
        without the option): a frame's acquisition datetime is as identifying as the study date."""
        if action is Action.K:
            self.count["kept"] += 1
            return
        if action is Action.Z:
            self.put(d, tag, elem, vr, b"")
            self.count["emptied"] += 1
            return
        text = _text(elem)
        if not text:
            self.count["kept"] += 1
            return
        if self.dates_option and action in (None, Action.C, Action.D):
            key = (vr, text)
            out = self._dates.get(key, False)
            if out is False:
                out = self._dates[key] = (shift_da if vr == "DA" else shift_dt)(text, self.shift)
            if out is not None:
                self.put(d, tag, elem, vr, out.encode("ascii"))
                self.count["shifted"] += 1
                return
        self.put(d, tag, elem, vr, (DUMMY_DA if vr == "DA" else DUMMY_DT).encode("ascii"))
        self.count["dummy_date"] += 1

    def age(self, d, tag, elem, vr) -> None:
        text = _text(elem)
        if not text:
            self.count["kept"] += 1
            return
        rule = self.ctx.age_rule
        out = group_age(text, rule.max_years, rule.grouped_value)
        if out is None:  # not an age string: nothing safe to keep
            del d[tag]
            self.count["removed"] += 1
        elif out != text:
            self.put(d, tag, elem, vr, out.encode("ascii"))
            self.count["age_grouped"] += 1
        else:
            self.count["kept"] += 1

    def clean(self, ds, d, tag, elem, vr) -> None:
        """C: keep the meaning, lose the identity."""
        if vr == "TM":
            # Dates move by whole days, so a time of day is already consistent with its date.
            self.count["kept"] += 1
            return
        if vr == "AS":
            self.age(d, tag, elem, vr)
            return
        if vr in FREE_TEXT_VRS or vr == "PN":
            # Reports and comments: names hide anywhere in them; without NLP they are blanked.
            self.put(d, tag, elem, vr, b"")
            self.count["cleaned"] += 1
            return
        if vr in ("LO", "SH", "CS", "UC"):
            value = ds[tag].value  # pydicom decodes with the object's character set
            text = "\\".join(map(str, value)) if isinstance(value, (list, tuple)) or \
                type(value).__name__ == "MultiValue" else str(value or "")
            if self._identifiers is None:
                self._identifiers = identifier_tokens(
                    [_text(e) for e in self._id_elems] + [self.ctx.patient_id])
            out = scrub_descriptor(text, vr, self._identifiers)
            ds[tag] = DataElement(tag, vr, out)
            self.count["cleaned"] += 1
            return
        # Binary, numeric or unknown: nothing to clean it with.
        del d[tag]
        self.count["removed"] += 1
