"""DICOM RT Structure Sets: one contour row per usable ROI, one label row per ROI observation.

A ROI is usable when it has at least one contour with points. ROIs without one are reported as
`rtstruct_empty_contour` problems; the object is refused only when no ROI is usable.
"""

from __future__ import annotations

from pathlib import Path

from medlake.dicom.sop_classes import RTSTRUCT

from .model import AnnotationProblem, AnnotationResult, RowMaker, code_str, first, read_dicom, text


def _image_index(ds) -> tuple[dict[str, tuple[str | None, str | None]], dict[str, tuple[str | None, str | None]]]:
    """sop uid -> (study, series) and frame of reference -> (study, series) from the referenced FoR sequence."""
    by_sop: dict[str, tuple[str | None, str | None]] = {}
    by_for: dict[str, tuple[str | None, str | None]] = {}
    for ref_for in getattr(ds, "ReferencedFrameOfReferenceSequence", None) or []:
        for rt_study in getattr(ref_for, "RTReferencedStudySequence", None) or []:
            study = text(getattr(rt_study, "ReferencedSOPInstanceUID", None))
            for rt_series in getattr(rt_study, "RTReferencedSeriesSequence", None) or []:
                series = text(getattr(rt_series, "SeriesInstanceUID", None))
                for img in getattr(rt_series, "ContourImageSequence", None) or []:
                    sop = text(getattr(img, "ReferencedSOPInstanceUID", None))
                    if sop:
                        by_sop[sop] = (study, series)
                for_uid = text(getattr(ref_for, "FrameOfReferenceUID", None))
                if for_uid and for_uid not in by_for:
                    by_for[for_uid] = (study, series)
    return by_sop, by_for


def _has_points(contour) -> bool:
    data = getattr(contour, "ContourData", None)
    if not data or len(data) < 3:
        return False
    n = getattr(contour, "NumberOfContourPoints", None)
    return n is None or int(n) > 0


def read_rtstruct(path: Path) -> AnnotationResult:
    ds = read_dicom(path, RTSTRUCT, what="RTSTRUCT")
    sop = str(ds.SOPInstanceUID)
    mk = RowMaker(sop, "rtstruct")
    problems: list[tuple[str, str]] = []
    rois = list(getattr(ds, "StructureSetROISequence", None) or [])
    if not rois:
        raise AnnotationProblem("rtstruct_no_roi", "the structure set has no ROI (StructureSetROISequence empty)")
    by_sop, by_for = _image_index(ds)
    contours_by_roi = {}
    for rc in getattr(ds, "ROIContourSequence", None) or []:
        num = getattr(rc, "ReferencedROINumber", None)
        if num is not None:
            contours_by_roi.setdefault(int(num), []).extend(getattr(rc, "ContourSequence", None) or [])
    observations = {}
    for obs in getattr(ds, "RTROIObservationsSequence", None) or []:
        num = getattr(obs, "ReferencedROINumber", None)
        if num is not None:
            observations.setdefault(int(num), []).append(obs)
    default_study = text(getattr(ds, "StudyInstanceUID", None))
    for k, roi in enumerate(rois, start=1):
        num = getattr(roi, "ROINumber", None)
        num = int(num) if num is not None else None
        contours = [c for c in contours_by_roi.get(num, []) if _has_points(c)]
        if not contours:
            problems.append(("rtstruct_empty_contour", f"ROI item {k} has no contour with points"))
            continue
        images = []
        for c in contours:
            for img in getattr(c, "ContourImageSequence", None) or []:
                u = text(getattr(img, "ReferencedSOPInstanceUID", None))
                if u and u not in images:
                    images.append(u)
        study, series = None, None
        for u in images:
            if u in by_sop:
                study, series = by_sop[u]
                break
        if series is None:
            study, series = by_for.get(text(getattr(roi, "ReferencedFrameOfReferenceUID", None)) or "", (None, None))
        if series is None and len(by_for) == 1:
            study, series = next(iter(by_for.values()))
        study = study or default_study
        instance = images[0] if len(images) == 1 else None
        name = text(getattr(roi, "ROIName", None))
        mk.add("contour", label=name, study=study, series=series, instance=instance)
        for obs in observations.get(num, []):
            obs_label = text(getattr(obs, "ROIObservationLabel", None))
            interpreted = text(getattr(obs, "RTROIInterpretedType", None))
            obs_code = code_str(first(getattr(obs, "RTROIIdentificationCodeSequence", None)))
            if not (obs_label or interpreted or obs_code):
                continue
            mk.add("label", label=obs_label or name, code=obs_code, value_text=interpreted,
                   study=study, series=series, instance=instance)
    if not mk.rows:
        raise AnnotationProblem("rtstruct_empty_contour", "no ROI of the structure set has a contour with points")
    return AnnotationResult(mk.rows, problems)
