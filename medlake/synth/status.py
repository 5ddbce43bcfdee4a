"""Which annotation kinds a case gets, per format, for the status it is meant to have.

The pipeline computes status from what it finds against the registry's required kinds; this module is
the generator's side of that contract, so the truth's expected_status follows from the files written.
"""

from __future__ import annotations

from medlake.program.registry import Dataset

STATUSES = ("image_only", "partial", "full")

# What each format naturally carries when a reader annotates everything it can.
CAPACITY = {
    "rtstruct": ("contour", "label"),
    "seg": ("mask",),
    "sr": ("measurement", "label"),
    "presentation_state": ("contour", "label"),
    "aim": ("contour", "label", "measurement"),
    "mask_image": ("mask",),
    "label_sheet": ("label", "measurement"),
}


def possible_statuses(ds: Dataset) -> tuple[str, ...]:
    if not ds.annotation_formats:
        return ("image_only",)
    if ds.label_source == "ehr_code":            # diagnosis-code labels never make a case full
        return ("image_only", "partial")
    if len(ds.required_annotation_kinds) == 1:  # one kind: a case has it or not
        return ("image_only", "full")
    return STATUSES


def kinds_by_format(ds: Dataset, status: str) -> dict[str, tuple[str, ...]]:
    """format -> kinds to write for one case (empty dict: image only)."""
    if status == "image_only":
        return {}
    if status not in possible_statuses(ds):
        raise ValueError(f"dataset {ds.id} cannot have {status} cases")
    required = tuple(ds.required_annotation_kinds)
    out: dict[str, tuple[str, ...]] = {}
    if status == "full" or ds.label_source == "ehr_code":
        for fmt in ds.annotation_formats:
            if fmt == "aim":
                kinds = tuple(k for k in CAPACITY[fmt] if k in required) or ("label",)
            elif fmt == "label_sheet" and ds.label_source == "ehr_code":
                kinds = ("label",)
            else:
                kinds = CAPACITY[fmt]
            out[fmt] = kinds
        covered = {k for ks in out.values() for k in ks}
        if ds.label_source != "ehr_code" and not set(required) <= covered:
            raise ValueError(f"dataset {ds.id}: formats {ds.annotation_formats} cannot carry {required}")
        return out
    # partial: everything the formats can carry of the required kinds except the last one
    target = set(required[:-1])
    for fmt in ds.annotation_formats:
        kinds = tuple(k for k in CAPACITY[fmt] if k in target)
        if kinds:
            out[fmt] = kinds
    if not out:
        raise ValueError(f"dataset {ds.id}: cannot build a partial case from {ds.annotation_formats}")
    return out
