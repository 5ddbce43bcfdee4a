"""Defacing (Clean Recognizable Visual Features) on the synthetic head phantom.

The face is defined from the phantom's own construction (nose and lips protruding in front of the
head ellipsoid), so the test does not trust the defacer's mask to say where the face was.
"""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medlake.deid.deface import deface_series, deface_volume
from medlake.synth.phantoms import head_phantom, hu_to_mr

# Half resolution keeps the suite fast; the phantom scales to the field of view, so the head has
# the same physical size as at 256x256x176 / 1 mm (bench/deface.py times the full size).
SHAPE = (88, 128, 128)
SP = 2.0


def _regions(shape=SHAPE, spacing=(SP, SP, SP)):
    """Face (protruding nose + lips) and brain masks, from the geometry head_phantom uses."""
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)

    def ell(c, r):
        return ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 <= 1.0

    ext = [max((n - 1) * s / 2, s) for n, s in zip(shape, spacing)]
    hz, hy, hx = ext[0] * 0.95, ext[1] * 0.72, ext[2] * 0.62
    head = ell((0, 0.05 * hy, 0), (hz, hy, hx))
    front = -0.9 * hy
    face = ell((-0.3 * hz, front - 0.02 * hy, 0), (0.2 * hz, 0.16 * hy, 0.1 * hx))
    for dz in (-0.52, -0.6):
        face = face | ell((dz * hz, front + 0.02 * hy, 0), (0.04 * hz, 0.08 * hy, 0.22 * hx))
    face = face & ~head
    brain = ell((0.18 * hz, 0.08 * hy, 0), (0.74 * hz, 0.79 * hy, 0.80 * hx))
    return face, brain


def _image(arr, spacing=SP):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((spacing,) * 3)
    img.SetOrigin([-(n - 1) * spacing / 2 for n in img.GetSize()])
    return img


def _moved(img: sitk.Image, masks):
    """The same head turned 10 degrees, scaled by 6% and shifted: registration must follow it.

    The turn is about the long axis: the phantom's outline is nearly a sphere in the sagittal
    plane, so a pitch leaves nothing but the nose for mutual information to see; real heads are
    far less symmetric."""
    t = sitk.AffineTransform(3)
    rot = sitk.Euler3DTransform((0, 0, 0), 0.0, 0.0, math.radians(10))
    m = np.asarray(rot.GetMatrix()).reshape(3, 3) / 1.06
    t.SetMatrix(m.ravel().tolist())
    t.SetTranslation((6.0, -9.0, 7.0))
    bg = float(sitk.GetArrayViewFromImage(img).min())
    out = sitk.Resample(img, img, t, sitk.sitkNearestNeighbor, bg)
    moved = []
    for mk in masks:
        mi = sitk.GetImageFromArray(mk.astype(np.uint8))
        mi.CopyInformation(img)
        moved.append(sitk.GetArrayFromImage(sitk.Resample(mi, img, t, sitk.sitkNearestNeighbor, 0)).astype(bool))
    return out, moved


def _check(before: np.ndarray, after: np.ndarray, face, brain, air_thr):
    assert face.sum() > 200, "phantom face region unexpectedly small"
    surviving = (after[face] > air_thr).mean()
    assert surviving < 0.001, f"{surviving:.2%} of the face survived"
    assert (before[face] > air_thr).mean() > 0.99
    same = (after[brain] == before[brain]).mean()
    assert same > 0.99, f"only {same:.2%} of brain voxels unchanged"


@pytest.fixture(scope="module")
def phantom():
    hu = head_phantom(SHAPE, (SP, SP, SP))
    return hu, *_regions()


def test_deface_ct_phantom(phantom):
    hu, face, brain = phantom
    img = _image(hu)
    res = deface_volume(img, "CT", threads=2)
    after = sitk.GetArrayFromImage(res.image)
    assert res.image.GetSize() == img.GetSize() and res.image.GetPixelID() == img.GetPixelID()
    _check(hu, after, face, brain, -500)
    assert after[sitk.GetArrayViewFromImage(res.mask).astype(bool)].max() == -1000
    assert res.method.startswith("pydeface-template")


def test_deface_mr_phantom_moved(phantom):
    hu, face, brain = phantom
    mr = _image(hu_to_mr(hu))
    moved, (face_m, brain_m) = _moved(mr, (face, brain))
    before = sitk.GetArrayFromImage(moved)
    res = deface_volume(moved, "MR", threads=2)
    after = sitk.GetArrayFromImage(res.image)
    _check(before, after, face_m, brain_m, 0)


def test_deface_ct_phantom_moved(phantom):
    hu, face, brain = phantom
    moved, (face_m, brain_m) = _moved(_image(hu), (face, brain))
    before = sitk.GetArrayFromImage(moved)
    after = sitk.GetArrayFromImage(deface_volume(moved, "CT", threads=2).image)
    _check(before, after, face_m, brain_m, -500)


def _series(hu: np.ndarray, spacing=SP, shuffle=True):
    """CT slices as stored: uint16 with RescaleIntercept -1024, slices in scrambled file order."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(hu.shape[0]):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality = "CT"
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-(hu.shape[2] - 1) * spacing / 2, -(hu.shape[1] - 1) * spacing / 2,
                                   (k - (hu.shape[0] - 1) / 2) * spacing]
        ds.PixelSpacing = [spacing, spacing]
        ds.SliceThickness = spacing
        ds.Rows, ds.Columns = hu.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (hu[k].astype(np.int32) + 1024).clip(0, 4095).astype(np.uint16).tobytes()
        out.append(ds)
    if shuffle:
        rng = np.random.default_rng(3)
        out = [out[i] for i in rng.permutation(len(out))]
    return out


def test_deface_series_roundtrip(phantom):
    hu, face, brain = phantom
    series = _series(hu)
    out = deface_series(series)
    assert len(out) == len(series)
    order = np.argsort([float(d.ImagePositionPatient[2]) for d in out])
    after = np.stack([out[i].pixel_array.astype(np.int32) * 1 - 1024 for i in order])
    for d in out:
        assert d.RecognizableVisualFeatures == "NO"
        assert d.pixel_array.dtype == np.uint16 and d.BitsStored == 12
        assert d.RescaleIntercept == -1024
    _check(hu.astype(np.int32), after, face, brain, -500)
    assert after.min() >= -1024  # air fill clipped into the stored range, never wrapped
