"""What a non-DICOM landed file is, from its name and first bytes (never from its folder alone)."""

from __future__ import annotations

import re

TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
WSI_SUFFIXES = (".ndpi", ".svs", ".tif", ".tiff")
# A mask file is named after the instance (2D) or series (3D) it labels: <UID>__<label>.<ext>
MASK_NAME = re.compile(r"^(?P<uid>[0-9]+(?:\.[0-9]+)+)__(?P<label>.+)\.(?:png|nii\.gz)$")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


class KindProblem(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def image_kind(name: str, head: bytes) -> str:
    """Kind of a non-DICOM file under images/: only whole-slide images are allowed there."""
    if name.lower().endswith(WSI_SUFFIXES) and head[:4] in TIFF_MAGICS:
        return "wsi"
    if name.lower().endswith(WSI_SUFFIXES):
        raise KindProblem("wsi_not_tiff", "has a whole-slide image ending but is not a TIFF file")
    raise KindProblem("not_dicom", "not a DICOM Part-10 file (no DICM marker at byte 128) nor a whole-slide image")


def annotation_kind(name: str, head: bytes) -> str:
    """Kind of a non-DICOM file under annotations/ (EXPORT_FORMAT.md, annotations table)."""
    lower = name.lower()
    if lower.endswith(".xml"):
        if b"ImageAnnotationCollection" in head:
            return "aim"
        raise KindProblem("not_aim", "XML file without an AIM ImageAnnotationCollection root")
    if lower.endswith(".png") or lower.endswith(".nii.gz"):
        magic_ok = head.startswith(PNG_MAGIC) if lower.endswith(".png") else head.startswith(GZIP_MAGIC)
        if not magic_ok:
            raise KindProblem("mask_unreadable", "mask file content does not match its PNG / gzip ending")
        if not MASK_NAME.match(name):
            raise KindProblem(
                "mask_name_invalid",
                "mask file name must start with the SOP or Series Instance UID it labels, then __<label>",
            )
        return "mask_image"
    if lower.endswith(".csv"):
        return "label_sheet"
    if lower.endswith(".xlsx"):
        if not head.startswith(ZIP_MAGIC):
            raise KindProblem("label_sheet_unreadable", "xlsx file is not a zip container")
        return "label_sheet"
    raise KindProblem("unknown_annotation_format",
                      "not a DICOM object, AIM XML, PNG/NIfTI mask or csv/xlsx label sheet")
