"""The normalised annotation row, the result of reading one object, and the problem type.

Messages never contain identifier values (names, UIDs, case ids, free text): they name the
structure that is wrong, so they can be stored and shown as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("contour", "mask", "measurement", "label")
SOURCE_FORMATS = ("rtstruct", "seg", "sr", "presentation_state", "aim", "mask_image", "label_sheet")


@dataclass(frozen=True)
class AnnotationRow:
    annotation_id: str          # "<object id>#<n>"; object id = SOP Instance UID, or file name for non-DICOM
    kind: str                   # contour | mask | measurement | label
    source_format: str          # rtstruct | seg | sr | presentation_state | aim | mask_image | label_sheet
    label: str | None           # ROI name / segment label / concept name / label-sheet label
    code: str | None            # "SCT:27925004" style when the source codes it
    value: float | None         # measurements (and the voxel count of masks)
    unit: str | None
    target_study_uid: str | None
    target_series_uid: str | None
    target_instance_uid: str | None
    target_case: str | None     # label sheets targeting a case id
    reader_role: str | None
    # Additions beyond the brief, optional so the positional contract above is unchanged:
    value_text: str | None = None   # categorical value: SR coded value meaning, label-sheet text value
    region: str | None = None       # label sheets' region column


@dataclass
class AnnotationResult:
    rows: list[AnnotationRow]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (code, message) that did not stop reading

    @property
    def kinds(self) -> set[str]:
        return kinds_found(self.rows)


class AnnotationProblem(Exception):
    """An annotation object that cannot be read. `code` is stable; `message` carries no identifier."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def kinds_found(rows: Iterable[AnnotationRow]) -> set[str]:
    return {r.kind for r in rows}


def code_str(item) -> str | None:
    """"SCHEME:VALUE" from a DICOM code item (CodeValue, LongCodeValue or URNCodeValue)."""
    if item is None:
        return None
    value = (getattr(item, "CodeValue", None) or getattr(item, "LongCodeValue", None)
             or getattr(item, "URNCodeValue", None))
    if not value:
        return None
    scheme = getattr(item, "CodingSchemeDesignator", None) or ""
    return f"{scheme}:{value}" if scheme else str(value)


def first(seq):
    """First item of a (possibly absent or empty) DICOM sequence."""
    return seq[0] if seq else None


def text(v) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def to_float(v) -> float | None:
    """A finite float from a number or numeric text, else None."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(str(v).strip()) if not isinstance(v, (int, float)) else float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def read_dicom(path: Path, sop_classes: set[str] | None = None, prefix: str | None = None,
               what: str = "annotation", pixels: bool = False):
    """pydicom dataset of a Part-10 file whose SOP class is one of `sop_classes` (or starts with `prefix`)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError, KeyError) as e:
        raise AnnotationProblem("dicom_unreadable", f"the {what} object is not readable DICOM "
                                                    f"({type(e).__name__})") from None
    sop_class = str(getattr(ds, "SOPClassUID", "") or "")
    if (sop_classes is not None or prefix is not None) and not (
            (sop_classes is not None and sop_class in sop_classes) or (prefix is not None and sop_class.startswith(prefix))):
        raise AnnotationProblem("wrong_sop_class", f"the object's SOP class is not a {what} SOP class")
    if not text(getattr(ds, "SOPInstanceUID", None)):
        raise AnnotationProblem("dicom_no_sop_instance_uid", f"the {what} object has no SOP Instance UID")
    return ds


class RowMaker:
    """Numbers the rows of one object: "<object id>#1", "#2", ..."""

    def __init__(self, object_id: str, source_format: str) -> None:
        self.object_id = object_id
        self.source_format = source_format
        self.rows: list[AnnotationRow] = []

    def add(self, kind: str, *, label=None, code=None, value=None, unit=None, study=None, series=None,
            instance=None, case=None, reader_role=None, value_text=None, region=None) -> AnnotationRow:
        row = AnnotationRow(
            annotation_id=f"{self.object_id}#{len(self.rows) + 1}", kind=kind, source_format=self.source_format,
            label=text(label), code=code, value=value, unit=text(unit), target_study_uid=text(study),
            target_series_uid=text(series), target_instance_uid=text(instance), target_case=text(case),
            reader_role=text(reader_role), value_text=text(value_text), region=text(region))
        self.rows.append(row)
        return row
