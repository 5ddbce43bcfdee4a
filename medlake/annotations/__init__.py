"""Annotation readers: one annotation object (landing or de-identified) -> normalised rows.

    from medlake.annotations import read_annotation, kinds_found
    result = read_annotation(path, "rtstruct")      # kind: the landed-file kind
    result.rows        # list[AnnotationRow]
    result.problems    # [(code, message)] that did not stop reading (e.g. one ROI without contour)
    kinds_found(result.rows)   # {"contour", "label"}

An object that cannot be read at all raises AnnotationProblem(code, message); messages never contain
identifier values. Row kinds are contour, mask, measurement and label (config/program.yaml's
required_annotation_kinds).
"""

from __future__ import annotations

from pathlib import Path

from .aim import read_aim
from .masks import mask_shape, parse_mask_name, read_mask
from .model import KINDS, SOURCE_FORMATS, AnnotationProblem, AnnotationResult, AnnotationRow, kinds_found
from .pstate import read_presentation_state
from .rtstruct import read_rtstruct
from .seg import read_seg
from .sheets import read_label_sheet
from .sr import read_sr

READERS = {
    "rtstruct": read_rtstruct,
    "seg": read_seg,
    "sr": read_sr,
    "presentation_state": read_presentation_state,
    "aim": read_aim,
    "mask_image": read_mask,
    "label_sheet": read_label_sheet,
}


def read_annotation(path: Path, kind: str) -> AnnotationResult:
    """Rows of one annotation object of landed-file kind `kind`; AnnotationProblem if unreadable."""
    reader = READERS.get(kind)
    if reader is None:
        raise AnnotationProblem("annotation_kind_unknown", f"no annotation reader for landed-file kind {kind!r}")
    path = Path(path)
    if not path.is_file():
        raise AnnotationProblem("annotation_missing", "the annotation file does not exist")
    return reader(path)


__all__ = ["AnnotationRow", "AnnotationResult", "AnnotationProblem", "read_annotation", "kinds_found", "mask_shape",
           "parse_mask_name", "READERS", "KINDS", "SOURCE_FORMATS"]
