"""Clean Pixel Data: burned-in text found and blanked in every frame, whatever the encoding."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import JPEG2000Lossless, RLELossless, ExplicitVRLittleEndian, generate_uid

from medlake.deid.pixels import (
    PixelError, PixelRule, clean_pixels, detect_text, remove_overlays_and_icons, rules_from_config,
)
from medlake.synth.phantoms import TEXT_RGB, TEXT_VALUE_8BIT, TEXT_VALUE_12BIT, burn_text, fundus, speckle, xray

LINES = ["CHEN MEI-LING", "A7730219", "2019-05-04"]


def _ds(pixels: np.ndarray, modality: str, bits: int, rgb=False, frames=None, burned="NO") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.BurnedInAnnotation = burned
    ds.set_pixel_data(pixels, "RGB" if rgb else "MONOCHROME2", bits, generate_instance_uid=False)
    if frames:
        ds.NumberOfFrames = frames
    return ds


def _text_pixels(arr, value):
    return int(np.all(arr == value, axis=-1).sum()) if isinstance(value, tuple) else int((arr == value).sum())


def test_ivus_multiframe_cleaned_in_every_frame():
    px = burn_text(speckle(6, 128, 128, np.random.default_rng(1)), LINES, TEXT_VALUE_8BIT)
    ds = _ds(px, "IVUS", 8, frames=6, burned="YES")
    sop = ds.SOPInstanceUID
    res = clean_pixels(ds, "IVUS")
    assert res.cleaned and res.frames == 6 and res.detected_boxes >= 1 and res.rule_boxes == 2
    out = ds.pixel_array
    assert out.shape == (6, 128, 128)
    assert _text_pixels(out, TEXT_VALUE_8BIT) == 0
    assert ds.BurnedInAnnotation == "NO" and ds.SOPInstanceUID == sop
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    # The lumen ring in the centre survives.
    assert np.array_equal(out[:, 50:78, 50:78], px[:, 50:78, 50:78])


def test_xray_text_found_though_header_says_no():
    px = burn_text(xray(512, 512, 3), LINES, TEXT_VALUE_12BIT)
    ds = _ds(px, "DX", 12)
    res = clean_pixels(ds, "DX")
    assert res.cleaned and res.reason == "text_detected"
    assert _text_pixels(ds.pixel_array, TEXT_VALUE_12BIT) == 0


def test_clean_xray_left_alone():
    px = xray(512, 512, 3)
    ds = _ds(px, "DX", 12)
    before = ds.PixelData
    res = clean_pixels(ds, "DX")
    assert not res.cleaned and res.reason == "not_needed" and ds.PixelData == before
    assert detect_text(px.astype(np.float32)) == []


@pytest.mark.parametrize("ts", [RLELossless, JPEG2000Lossless])
def test_fundus_rgb_compressed_reencoded_losslessly(ts):
    px = burn_text(fundus(256, 256, 1), LINES, TEXT_RGB)
    ds = _ds(px.copy(), "OP", 8, rgb=True)
    ds.LossyImageCompression = "00"
    ds.compress(ts, generate_instance_uid=False, **({"use_mct": False} if ts == JPEG2000Lossless else {}))
    res = clean_pixels(ds, "OP")
    assert res.cleaned and res.transfer_syntax == ts and ds.file_meta.TransferSyntaxUID == ts
    out = ds.pixel_array
    assert _text_pixels(out, TEXT_RGB) == 0
    assert ds.LossyImageCompression == "00"
    assert np.array_equal(out[100:156, 100:156], px[100:156, 100:156])   # lossless: the disc is intact


def test_undecodable_pixels_raise():
    ds = _ds(np.zeros((64, 64), np.uint8), "US", 8)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51garbage"])
    with pytest.raises(PixelError) as e:
        clean_pixels(ds, "US")
    assert e.value.reason == "undecodable_pixels"


def test_declared_text_nowhere_to_be_found_is_quarantined():
    ds = _ds(np.full((64, 64), 100, np.uint16), "CT", 12, burned="YES")
    with pytest.raises(PixelError) as e:
        clean_pixels(ds, "CT")
    assert e.value.reason == "burned_in_text_unlocated"


def test_site_rules():
    rules = rules_from_config([{"name": "acme-us", "modality": "us", "manufacturer": "acme",
                                "boxes": [[0, 0, 40, 10]], "units": "pixels", "exclusive": True}])
    assert rules[0].modality == "US"
    ds = _ds(np.full((64, 64), 50, np.uint8), "US", 8)
    ds.Manufacturer = "ACME Medical"
    res = clean_pixels(ds, "US", rules=rules, detect=False)
    assert res.rules == ["acme-us"] and res.rule_boxes == 1
    out = ds.pixel_array
    assert (out[:10, :40] == 50).sum() == 0 and (out[10:] == 50).all()
    with pytest.raises(ValueError, match="pixel rule 0"):
        rules_from_config([{"modality": "US", "boxes": [[0, 0, 2, 1]]}])
    assert PixelRule("x", "XA", ((0.0, 0.0, 0.5, 0.5),)).pixel_boxes(10, 20) == [(0, 0, 10, 5)]


def test_overlays_and_icons_removed_at_any_depth():
    ds = _ds(np.full((8, 8), 0x1F0, np.uint16), "CT", 12)
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60000102, "US", 12)    # embedded overlay: no OverlayData, lives in bit 12
    ds.PixelData = (np.full((8, 8), 0x1F0 | 0x1000, np.uint16)).tobytes()
    icon = Dataset()
    icon.Rows = 2
    item = Dataset()
    item.IconImageSequence = [icon]
    ds.ReferencedImageSequence = [item]
    ds.IconImageSequence = [Dataset()]
    counts = remove_overlays_and_icons(ds)
    assert counts["icons"] == 2 and counts["overlay_elements"] == 3
    assert counts["embedded_overlay_bits_cleared"] == 1
    assert "IconImageSequence" not in ds and "IconImageSequence" not in ds.ReferencedImageSequence[0]
    assert not any(0x6000 <= e.tag.group <= 0x60FF for e in ds)
    assert (np.frombuffer(ds.PixelData, "<u2") == 0x1F0).all()


def test_detector_morphology_matches_itk_safe_border():
    """The detector's opening and closing are ITK's (safe border), edges included, at any size."""
    import SimpleITK as sitk

    from medlake.deid.pixels import _closing, _opening

    rng = np.random.default_rng(5)
    for rows, cols in [(5, 5), (8, 8), (9, 31), (40, 12), (64, 64)]:
        img = rng.random((rows, cols)).astype(np.float32)
        itk = sitk.GetArrayFromImage(sitk.GrayscaleMorphologicalOpening(
            sitk.GetImageFromArray(img), [3, 3], sitk.sitkBox, True))
        assert np.array_equal(_opening(img, 3), itk)
        mask = rng.random((rows, cols)) > 0.7
        itk = sitk.GetArrayFromImage(sitk.BinaryMorphologicalClosing(
            sitk.GetImageFromArray(mask.astype(np.uint8)), [6, 1], sitk.sitkBox)).astype(bool)
        assert np.array_equal(_closing(mask, 1, 6), itk)
        assert _closing(mask, 1, 6).any() and not np.array_equal(_opening(img, 3), img)


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless])
def test_cleaned_data_set_written_and_read_back(ts, tmp_path):
    """A cleaned data set goes to its file without a serialise-and-parse round trip, whatever its
    transfer syntax: the file parses, decodes to the same frame and holds no identifier."""
    from pydicom.dataset import FileDataset

    from medlake.deid.context import DeidContext
    from medlake.deid.files import deidentify_dataset
    from medlake.deid.keys import DeidKeys

    px = burn_text(fundus(128, 128, 1), LINES, TEXT_RGB)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    src = FileDataset("src.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    src.SOPClassUID, src.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    src.StudyInstanceUID, src.SeriesInstanceUID = generate_uid(), generate_uid()
    src.PatientID, src.PatientName, src.Modality = "A123456789", "CHEN^MEI-LING", "OP"
    src.set_pixel_data(px.copy(), "RGB", 8, generate_instance_uid=False)
    if ts != ExplicitVRLittleEndian:
        src.compress(ts, generate_instance_uid=False, **({"use_mct": False} if ts == JPEG2000Lossless else {}))
    src.save_as(tmp_path / "src.dcm", enforce_file_format=True)

    ds = pydicom.dcmread(tmp_path / "src.dcm")
    assert clean_pixels(ds, "OP").cleaned
    expected = ds.pixel_array.copy()
    out = tmp_path / "out.dcm"
    deidentify_dataset(ds, out, DeidContext(team="t", patient_id="A123456789", keys=DeidKeys(b"k" * 32)))
    back = pydicom.dcmread(out)
    assert back.file_meta.TransferSyntaxUID == ts
    assert np.array_equal(back.pixel_array, expected) and _text_pixels(back.pixel_array, TEXT_RGB) == 0
    raw = out.read_bytes()
    assert b"A123456789" not in raw and b"CHEN" not in raw
