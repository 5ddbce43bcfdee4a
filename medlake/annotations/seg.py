"""DICOM Segmentation: one mask row per segment that has frames, with its voxel count.

Read with pydicom (no highdicom round trip: the object only needs its segments, their frames and
what the frames were derived from). BINARY, FRACTIONAL and LABELMAP segmentations are counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlake.dicom.sop_classes import SEG

from .model import AnnotationProblem, AnnotationResult, RowMaker, code_str, first, read_dicom, text


def _frame_segments(ds, n_frames: int) -> list[int | None]:
    shared = first(getattr(ds, "SharedFunctionalGroupsSequence", None))
    shared_seg = None
    if shared is not None:
        si = first(getattr(shared, "SegmentIdentificationSequence", None))
        if si is not None and getattr(si, "ReferencedSegmentNumber", None) is not None:
            shared_seg = int(si.ReferencedSegmentNumber)
    per_frame = list(getattr(ds, "PerFrameFunctionalGroupsSequence", None) or [])
    out: list[int | None] = []
    for i in range(n_frames):
        seg = shared_seg
        if i < len(per_frame):
            si = first(getattr(per_frame[i], "SegmentIdentificationSequence", None))
            if si is not None and getattr(si, "ReferencedSegmentNumber", None) is not None:
                seg = int(si.ReferencedSegmentNumber)
        out.append(seg)
    return out


def _frame_sources(ds, n_frames: int) -> list[list[str]]:
    per_frame = list(getattr(ds, "PerFrameFunctionalGroupsSequence", None) or [])
    out = []
    for i in range(n_frames):
        uids = []
        item = per_frame[i] if i < len(per_frame) else None
        for der in (getattr(item, "DerivationImageSequence", None) or []) if item is not None else []:
            for src in getattr(der, "SourceImageSequence", None) or []:
                u = text(getattr(src, "ReferencedSOPInstanceUID", None))
                if u:
                    uids.append(u)
        out.append(uids)
    return out


def _pixels(ds, n_frames: int):
    """Frames as an array (frames, rows, cols), or None when the pixel data cannot be decoded here."""
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        return None
    try:
        arr = ds.pixel_array
    except Exception:  # noqa: BLE001 - pydicom raises many kinds for an undecodable transfer syntax
        return None
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    return arr if arr.shape[0] == n_frames else None


def read_seg(path: Path) -> AnnotationResult:
    ds = read_dicom(path, SEG, what="SEG", pixels=True)
    mk = RowMaker(str(ds.SOPInstanceUID), "seg")
    problems: list[tuple[str, str]] = []
    segments = list(getattr(ds, "SegmentSequence", None) or [])
    if not segments:
        raise AnnotationProblem("seg_no_segment", "the segmentation has no segment (SegmentSequence empty)")
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    labelmap = str(getattr(ds, "SegmentationType", "")).upper() == "LABELMAP"
    frame_seg = _frame_segments(ds, n_frames)
    sources = _frame_sources(ds, n_frames)
    pixels = _pixels(ds, n_frames)
    ref_series = list(getattr(ds, "ReferencedSeriesSequence", None) or [])
    series_by_sop: dict[str, str] = {}
    for rs in ref_series:
        s = text(getattr(rs, "SeriesInstanceUID", None))
        for ri in getattr(rs, "ReferencedInstanceSequence", None) or []:
            u = text(getattr(ri, "ReferencedSOPInstanceUID", None))
            if u and s:
                series_by_sop[u] = s
    only_series = text(getattr(ref_series[0], "SeriesInstanceUID", None)) if len(ref_series) == 1 else None
    study = text(getattr(ds, "StudyInstanceUID", None))
    for k, seg in enumerate(segments, start=1):
        number = getattr(seg, "SegmentNumber", None)
        number = int(number) if number is not None else k
        frames = [i for i, s in enumerate(frame_seg) if s == number or (labelmap and s is None)]
        if not frames:
            problems.append(("seg_empty_segment", f"segment item {k} has no frame"))
            continue
        images: list[str] = []
        for i in frames:
            for u in sources[i]:
                if u not in images:
                    images.append(u)
        series = next((series_by_sop[u] for u in images if u in series_by_sop), None) or only_series
        count = None
        if pixels is not None:
            sel = pixels[frames]
            count = float(np.count_nonzero(sel == number) if labelmap else np.count_nonzero(sel))
        code = code_str(first(getattr(seg, "SegmentedPropertyTypeCodeSequence", None)))
        mk.add("mask", label=getattr(seg, "SegmentLabel", None), code=code, value=count,
               unit="voxel" if count is not None else None, study=study, series=series,
               instance=images[0] if len(images) == 1 else None)
    if not mk.rows:
        raise AnnotationProblem("seg_empty_segment", "no segment of the segmentation has a frame")
    return AnnotationResult(mk.rows, problems)
