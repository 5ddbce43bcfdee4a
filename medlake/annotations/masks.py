"""Mask images named `<UID>__<label>.png` (2D, UID = SOP Instance UID) or `<UID>__<label>.nii.gz`
(3D, UID = Series Instance UID): one mask row with the voxel count of non-zero voxels.

Geometry is the caller's to check: `mask_shape` gives (rows, columns) for a PNG and
(slices, rows, columns) for a NIfTI volume, to compare with the image's Rows/Columns (and slice count).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .model import AnnotationProblem, AnnotationResult, RowMaker

MASK_NAME = re.compile(r"^(?P<uid>[0-9]+(?:\.[0-9]+)+)__(?P<label>.+?)\.(?P<ext>png|nii\.gz)$", re.IGNORECASE)


def parse_mask_name(name: str) -> tuple[str, str, str]:
    """(uid, label, "png" | "nii.gz") from a mask file name."""
    m = MASK_NAME.match(name)
    if not m:
        raise AnnotationProblem("mask_name_invalid", "mask file name must be <UID>__<label>.png or .nii.gz")
    return m["uid"], m["label"], m["ext"].lower()


def _png_array(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except Exception as e:  # noqa: BLE001 - Pillow raises many kinds for a bad file
        raise AnnotationProblem("mask_unreadable", f"the PNG mask cannot be decoded ({type(e).__name__})") from None
    if arr.ndim == 3:   # colour or grey+alpha: any non-zero channel marks the voxel
        arr = arr.any(axis=2)
    return arr


def _nifti_image(path: Path):
    import SimpleITK as sitk

    try:
        return sitk.ReadImage(str(path))
    except Exception as e:  # noqa: BLE001 - SimpleITK raises RuntimeError for most failures
        raise AnnotationProblem("mask_unreadable", f"the NIfTI mask cannot be read ({type(e).__name__})") from None


def mask_shape(path: Path) -> tuple[int, ...]:
    """(rows, columns) of a PNG mask; (slices, rows, columns) of a NIfTI mask (a 2D NIfTI gives (rows, columns))."""
    path = Path(path)
    _, _, ext = parse_mask_name(path.name)
    if ext == "png":
        from PIL import Image

        try:
            with Image.open(path) as im:
                width, height = im.size
        except Exception as e:  # noqa: BLE001
            raise AnnotationProblem("mask_unreadable", f"the PNG mask cannot be opened ({type(e).__name__})") from None
        return (height, width)
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except Exception as e:  # noqa: BLE001
        raise AnnotationProblem("mask_unreadable", f"the NIfTI mask cannot be read ({type(e).__name__})") from None
    size = tuple(int(s) for s in reader.GetSize())   # (x, y[, z])
    return tuple(reversed(size))


def read_mask(path: Path) -> AnnotationResult:
    path = Path(path)
    uid, label, ext = parse_mask_name(path.name)
    mk = RowMaker(path.name, "mask_image")
    if ext == "png":
        count = int(np.count_nonzero(_png_array(path)))
        target = {"instance": uid}
    else:
        import SimpleITK as sitk

        count = int(np.count_nonzero(sitk.GetArrayFromImage(_nifti_image(path))))
        target = {"series": uid}
    problems = []
    if count == 0:
        problems.append(("mask_empty", "the mask has no non-zero voxel"))
    mk.add("mask", label=label, value=float(count), unit="voxel", **target)
    return AnnotationResult(mk.rows, problems)
