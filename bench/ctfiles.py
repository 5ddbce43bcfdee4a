"""Fast writer of many CT slices: one pydicom template, UIDs patched at fixed width per file."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

_UID_ROOT = "1.2.826.0.1.3680043.8.498.77."
_WIDTH = 12


def _uid(kind: int, n: int) -> str:
    return f"{_UID_ROOT}{kind}.1{n:0{_WIDTH}d}"  # the leading 1: no UID component may start with 0


def template(rows: int, patient_id: str, study: int, series: int) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = _uid(3, 0)
    ds.StudyInstanceUID = _uid(1, study)
    ds.SeriesInstanceUID = _uid(2, series)
    ds.FrameOfReferenceUID = _uid(4, series)
    ds.PatientID = patient_id
    ds.PatientName = "LIN^MEI-HUA"
    ds.PatientBirthDate = "19581212"
    ds.PatientSex = "F"
    ds.AccessionNumber = "A0000001"
    ds.Modality = "CT"
    ds.StudyDate = ds.SeriesDate = "20190401"
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = "Scanner 9000"
    ds.BodyPartExamined = "CHEST"
    ds.PixelSpacing = [0.68, 0.68]
    ds.SliceThickness = 1.25
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-170, -170, 0]
    ds.InstanceNumber = 1
    ds.SeriesNumber = 1
    ds.Rows = ds.Columns = rows
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    rng = np.random.default_rng(series)
    ds.PixelData = rng.integers(0, 2000, (rows, rows), dtype=np.int16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_batch(batch_dir: Path, n_files: int, rows: int, first: int = 0, per_series: int = 500,
                patient_prefix: str = "P") -> list[tuple[str, str, str]]:
    """Write `n_files` slices (one study per series of `per_series`) plus cases.csv and _READY.

    Returns (case_id, patient_id, study_uid) per case.
    """
    images = batch_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    cases = []
    placeholder = _uid(3, 0).encode()
    for s0 in range(0, n_files, per_series):
        series = first + s0 // per_series
        patient = f"{patient_prefix}{series:09d}"
        tpl = template(rows, patient, series, series)
        assert tpl.count(placeholder) == 2
        folder = images / f"series-{series:06d}"
        folder.mkdir(exist_ok=True)
        for i in range(s0, min(s0 + per_series, n_files)):
            data = tpl.replace(placeholder, _uid(3, first * 1000 + i).encode())
            with open(folder / f"IM{i:07d}.dcm", "wb") as fh:
                fh.write(data)
        cases.append((f"C{series:07d}", patient, _uid(1, series)))
    with open(batch_dir / "cases.csv", "w") as fh:
        fh.write("case_id,patient_id,study_instance_uids\n")
        for c in cases:
            fh.write(",".join(c) + "\n")
    (batch_dir / "_READY").write_text("")
    return cases


def all_files(root: Path) -> list[str]:
    out = []
    for d, _, files in os.walk(root):
        out.extend(os.path.join(d, f) for f in files if f.endswith(".dcm"))
    return sorted(out)
