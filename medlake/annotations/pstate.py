"""DICOM Presentation States: graphic outlines -> contour, text objects -> label.

POLYLINE, INTERPOLATED, CIRCLE and ELLIPSE graphic objects are contours (POINT and MULTIPOINT are
not). The label of a text object is its UnformattedTextValue: on a landing object that is free text
and may carry identifiers; on a de-identified object it has been cleaned (clean_graphics).
"""

from __future__ import annotations

from pathlib import Path

from medlake.dicom.sop_classes import PRESENTATION_STATE_PREFIX

from .model import AnnotationResult, RowMaker, read_dicom, text

CONTOUR_TYPES = {"POLYLINE", "INTERPOLATED", "CIRCLE", "ELLIPSE"}


def _images(seq) -> list[str]:
    out = []
    for r in seq or []:
        u = text(getattr(r, "ReferencedSOPInstanceUID", None))
        if u and u not in out:
            out.append(u)
    return out


def read_presentation_state(path: Path) -> AnnotationResult:
    ds = read_dicom(path, prefix=PRESENTATION_STATE_PREFIX, what="presentation state")
    mk = RowMaker(str(ds.SOPInstanceUID), "presentation_state")
    problems: list[tuple[str, str]] = []
    series_by_sop: dict[str, str] = {}
    all_series: list[str] = []
    for rs in getattr(ds, "ReferencedSeriesSequence", None) or []:
        s = text(getattr(rs, "SeriesInstanceUID", None))
        if s:
            all_series.append(s)
            for u in _images(getattr(rs, "ReferencedImageSequence", None)):
                series_by_sop[u] = s
    study = text(getattr(ds, "StudyInstanceUID", None))
    for k, ann in enumerate(getattr(ds, "GraphicAnnotationSequence", None) or [], start=1):
        images = _images(getattr(ann, "ReferencedImageSequence", None))
        if not images:   # applies to every image the presentation state references
            images = list(series_by_sop)
        series = next((series_by_sop[u] for u in images if u in series_by_sop), None)
        if series is None and len(all_series) == 1:
            series = all_series[0]
        target = {"study": study, "series": series, "instance": images[0] if len(images) == 1 else None}
        for g in getattr(ann, "GraphicObjectSequence", None) or []:
            gtype = str(getattr(g, "GraphicType", "")).upper()
            data = getattr(g, "GraphicData", None)
            if gtype not in CONTOUR_TYPES:
                continue
            if not data:
                problems.append(("presentation_state_empty_graphic", f"graphic annotation item {k} has a "
                                                                     "graphic object without points"))
                continue
            mk.add("contour", label=getattr(ann, "GraphicLayer", None), **target)
        for t in getattr(ann, "TextObjectSequence", None) or []:
            mk.add("label", label=getattr(t, "UnformattedTextValue", None), **target)
    return AnnotationResult(mk.rows, problems)
