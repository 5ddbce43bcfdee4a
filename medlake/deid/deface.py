"""Clean Recognizable Visual Features (DICOM PS3.15 Annex E): defacing of head CT and MR volumes.

The pydeface method without FSL: pydeface's bundled mean T1 template is registered to the subject
(affine, Mattes mutual information, which copes with CT against an MR template), its face mask is
carried over with nearest-neighbour interpolation, and the face region is filled with air. The
template and mask live in medlake/deid/data/pixels/ (MIT, see PROVENANCE.md there); nothing is
downloaded at run time.

Registration runs on a 4 mm / 2 mm pyramid only: the face mask has a margin of centimetres, so a
full-resolution level would cost most of the time budget and change nothing that matters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk

from medlake.deid.errors import DeidError
from medlake.packaged import PackagedFileMissing, packaged_file

# pydeface's mean T1 template, pre-resampled to the 2 mm grid registration uses (derive_template.py).
TEMPLATE = "data/pixels/mean_reg2mean_2mm.nii.gz"
FACEMASK = "data/pixels/facemask.nii.gz"

CT_AIR = -1000.0
MARGIN_MM = 5.0


class DefaceError(DeidError):
    """A volume that cannot be defaced; the caller quarantines the series (never ships it)."""

    @property
    def reason(self) -> str:
        return self.code


@dataclass
class DefaceResult:
    image: sitk.Image          # defaced volume, same grid and pixel type as the input
    mask: sitk.Image           # uint8 on the input grid: 1 where the face was removed
    method: str                # e.g. "pydeface-template-affine-mi"
    removed_voxels: int = 0
    metric: float = float("nan")


@lru_cache(maxsize=1)
def _template() -> tuple[sitk.Image, sitk.Image]:
    try:
        template, facemask = packaged_file("medlake.deid", TEMPLATE), packaged_file("medlake.deid", FACEMASK)
    except PackagedFileMissing as e:
        raise DefaceError("deface_template_missing", str(e)) from None
    tpl = sitk.ReadImage(str(template), sitk.sitkFloat32)
    mask = sitk.ReadImage(str(facemask), sitk.sitkFloat32)
    # The shipped mask is 1 = keep, 0 = face; flip it so "removed" is the foreground we warp.
    face = sitk.Cast(mask < 0.5, sitk.sitkUInt8)
    # A safety margin: an affine fit of a mean template leaves centimetre-scale error at the face
    # surface, and a face left half-removed is still a face. The margin eats into the forehead and
    # orbits, not the brain, which lies behind bone.
    face = sitk.BinaryDilate(face, [int(round(MARGIN_MM / s)) for s in face.GetSpacing()], sitk.sitkBall)
    return tpl, face


def _resample_iso(img: sitk.Image, mm: float, interp=sitk.sitkLinear) -> sitk.Image:
    size = [max(1, int(round(n * s / mm))) for n, s in zip(img.GetSize(), img.GetSpacing())]
    if interp == sitk.sitkLinear:
        sigma = [max(0.0, (mm - s) / 2.0) for s in img.GetSpacing()]
        if any(s > 0 for s in sigma):
            img = sitk.SmoothingRecursiveGaussian(img, sigma)
    return sitk.Resample(img, size, sitk.Transform(), interp, img.GetOrigin(), [mm] * 3, img.GetDirection(), 0.0,
                         img.GetPixelID())


def _normalise(img: sitk.Image, modality: str) -> sitk.Image:
    """Map the subject to [0, 1] with air at 0, so MI sees head-versus-air the way the template does."""
    img = sitk.Cast(img, sitk.sitkFloat32)
    if modality == "CT":
        # Soft tissue and bone apart from air; metal and padding (-2048, -3024) clipped away.
        img = sitk.Clamp(img, sitk.sitkFloat32, -1000.0, 1500.0)
        return sitk.Cast((img + 1000.0) / 2500.0, sitk.sitkFloat32)
    arr = sitk.GetArrayViewFromImage(img)
    hi = float(np.percentile(arr[arr > 0], 99.5)) if np.any(arr > 0) else 1.0
    img = sitk.Clamp(img, sitk.sitkFloat32, 0.0, hi)
    return sitk.Cast(img / max(hi, 1e-6), sitk.sitkFloat32)


def _head_mask(img01: sitk.Image) -> sitk.Image:
    """Rough head/air mask (Otsu) used only to initialise the registration by image moments."""
    m = sitk.OtsuThreshold(img01, 0, 1)
    return sitk.Cast(m, sitk.sitkUInt8)


def _register(fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image, moving_mask: sitk.Image):
    init = sitk.CenteredTransformInitializer(fixed_mask, moving_mask, sitk.Similarity3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.MOMENTS)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.05, seed=1234)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-3, numberOfIterations=100,
                                                 relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    # Similarity first (7 dof: robust), then a full affine seeded by it for head shape differences.
    reg.SetInitialTransform(init, inPlace=True)
    reg.Execute(fixed, moving)
    affine = sitk.AffineTransform(3)
    affine.SetCenter(init.GetCenter())
    affine.SetMatrix(init.GetMatrix())
    affine.SetTranslation(init.GetTranslation())
    reg.SetShrinkFactorsPerLevel([1])
    reg.SetSmoothingSigmasPerLevel([1.0])
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=0.5, minStep=1e-3, numberOfIterations=60,
                                                 relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(affine, inPlace=True)
    reg.Execute(fixed, moving)
    return affine, reg.GetMetricValue()


def deface_volume(image: sitk.Image, modality: str, threads: int | None = None) -> DefaceResult:
    """Remove the face of a head CT ("CT") or MR ("MR") volume; the grid and pixel type are kept.

    The face is filled with -1000 (HU) for CT and with 0 for MR, in the input's own values: pass the
    volume in HU (rescale applied) for CT.
    """
    modality = modality.upper()
    if modality not in ("CT", "MR"):
        raise ValueError(f"deface_volume: modality must be CT or MR, not {modality!r}")
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise DefaceError("deface_not_a_volume", "defacing needs a scalar 3D volume")
    if min(image.GetSize()) < 8:
        raise DefaceError("deface_too_few_slices", f"volume of size {image.GetSize()} is too small to register")
    threads = threads or int(os.environ.get("MEDLAKE_DEFACE_THREADS", "0")) or None
    prev = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    if threads:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    try:
        tpl2, face = _template()
        fixed = _resample_iso(_normalise(image, modality), 2.0)
        moving = _normalise(tpl2, "MR")
        affine, metric = _register(fixed, moving, _head_mask(fixed), _head_mask(moving))
        # Outside the template's field of view nothing is known to be face: default 0 (keep).
        warped = sitk.Resample(face, image, affine, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(prev)
    fill = CT_AIR if modality == "CT" else 0.0
    arr = sitk.GetArrayFromImage(image)
    m = sitk.GetArrayViewFromImage(warped).astype(bool)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        fill = min(max(fill, info.min), info.max)
    arr[m] = fill
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(image)
    return DefaceResult(out, warped, "pydeface-template-affine-mi", int(m.sum()), float(metric))


def _series_geometry(datasets):
    iops = {tuple(round(float(v), 4) for v in d.ImageOrientationPatient) for d in datasets}
    if len(iops) != 1:
        raise DefaceError("deface_mixed_orientation", "slices of the series have different orientations")
    iop = np.array(next(iter(iops)), dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    pos = [np.array([float(v) for v in d.ImagePositionPatient]) for d in datasets]
    order = sorted(range(len(datasets)), key=lambda i: float(pos[i] @ normal))
    proj = np.array([pos[i] @ normal for i in order])
    steps = np.diff(proj)
    if steps.size and steps.min() <= 1e-3:
        raise DefaceError("deface_duplicate_slices", "two slices share a position; not a single volume")
    dz = float(np.median(steps)) if steps.size else float(datasets[0].get("SliceThickness", 1.0) or 1.0)
    return order, row, col, normal, pos[order[0]], dz


def deface_series(datasets: list, threads: int | None = None) -> list:
    """Deface one head CT/MR series given as single-frame slices, in place; returns the datasets
    (input order). Only face voxels change: the rest of each slice keeps its stored values, dtype
    and rescale. Sets RecognizableVisualFeatures NO. Raises DefaceError (quarantine) when the
    slices do not make one volume or the pixels cannot be decoded."""
    if not datasets:
        return datasets
    modality = str(datasets[0].get("Modality", "")).upper()
    if modality not in ("CT", "MR"):
        raise DefaceError("deface_unsupported_modality", f"defacing covers CT and MR, not {modality or 'unknown'}")
    if any(int(d.get("NumberOfFrames", 1) or 1) > 1 for d in datasets):
        raise DefaceError("deface_multiframe", "enhanced multi-frame objects are not supported; convert to slices")
    if any("ImagePositionPatient" not in d or "ImageOrientationPatient" not in d for d in datasets):
        raise DefaceError("deface_no_geometry", "slices lack ImagePositionPatient / ImageOrientationPatient")
    shapes = {(int(d.Rows), int(d.Columns)) for d in datasets}
    if len(shapes) != 1:
        raise DefaceError("deface_mixed_size", "slices of the series have different sizes")
    order, row, col, normal, origin, dz = _series_geometry(datasets)
    stored = []
    for d in datasets:
        try:
            stored.append(d.pixel_array)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means quarantine
            raise DefaceError("undecodable_pixels", f"{type(exc).__name__}: {exc}"[:300]) from None
    slope = [float(d.get("RescaleSlope", 1) or 1) for d in datasets]
    icpt = [float(d.get("RescaleIntercept", 0) or 0) for d in datasets]
    vol = np.stack([stored[i].astype(np.float32) * slope[i] + icpt[i] for i in order])
    img = sitk.GetImageFromArray(vol)
    ps = [float(v) for v in datasets[order[0]].PixelSpacing]     # row spacing, column spacing
    img.SetSpacing((ps[1], ps[0], abs(dz)))
    img.SetOrigin(tuple(float(v) for v in origin))
    img.SetDirection(tuple(np.column_stack([row, col, normal]).ravel().tolist()))
    res = deface_volume(img, modality, threads=threads)
    mask = sitk.GetArrayViewFromImage(res.mask).astype(bool)
    fill = CT_AIR if modality == "CT" else 0.0
    for k, i in enumerate(order):
        m = mask[k]
        if not m.any():
            d = datasets[i]
        else:
            d = datasets[i]
            arr = np.array(stored[i], copy=True)
            bits = int(d.get("BitsStored", arr.dtype.itemsize * 8))
            if int(d.get("PixelRepresentation", 0)) == 1:
                lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            else:
                lo, hi = 0, (1 << bits) - 1
            # Air in stored units, clipped into the stored range: never wraps to a bright value.
            arr[m] = int(np.clip(round((fill - icpt[i]) / slope[i]), lo, hi))
            _write_back(d, arr)
        d.RecognizableVisualFeatures = "NO"
    return datasets


def _write_back(ds, arr: np.ndarray) -> None:
    from .pixels import PixelError, encode_frames  # sibling module of this package's pixel work

    try:
        encode_frames(ds, arr[None])
    except PixelError as exc:
        raise DefaceError(exc.reason, str(exc)) from None
